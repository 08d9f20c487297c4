package firmware

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/fixtures"
	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/alpine"
	"github.com/threefoldtech/zosbuilder/pkg/download"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/modules"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// testMirror is a fixture Alpine mirror made once per test binary.
type testMirror struct {
	dir  string // the mirror root (file:// URL)
	keys string // a folder holding its public key
	key  *fixtures.SigningKey
	repo fixtures.FirmwareRepo
	ref  string // the .debs' /lib/firmware, unpacked by dpkg-deb (the reference reader)
}

var (
	scratch     string // removed by TestMain
	realMirror  testMirror
	realErr     error
	realMissing bool
	realOnce    sync.Once
)

func TestMain(m *testing.M) {
	var err error
	scratch, err = os.MkdirTemp("", "firmware-test-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(scratch)
	os.Exit(code)
}

// newTestMirror makes a fixture mirror under a fresh folder: from the
// Debian .debs, or from tree when set.
func newTestMirror(t testing.TB, tree string, debs []string) testMirror {
	t.Helper()
	dir, err := os.MkdirTemp(scratch, "mirror-")
	if err != nil {
		t.Fatal(err)
	}
	m := testMirror{dir: filepath.Join(dir, "mirror"), keys: filepath.Join(dir, "keys")}
	if m.key, err = fixtures.LoadOrCreateSigningKey(filepath.Join(dir, "signing.rsa")); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, filepath.Join(m.keys, m.key.Name), string(m.key.PublicPEM()), 0o644)
	m.repo, err = fixtures.FirmwareMirror(t.Context(), m.dir, fixtures.FirmwareMirrorOptions{
		Debs: debs, Tree: tree, Version: "3.22", Arch: "x86_64", Key: m.key})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// debMirror is the fixture mirror made of Debian's firmware packages, with
// the reference tree, shared by the tests of this package.
func debMirror(t *testing.T) testMirror {
	t.Helper()
	dpkgDeb := testutil.RequireTool(t, "dpkg-deb")
	realOnce.Do(func() {
		dir, err := fixtures.FirmwareDebsDir()
		if err != nil {
			realErr, realMissing = err, true
			return
		}
		debs, err := fixtures.FetchFirmwareDebs(t.Context(), dir, fixtures.FirmwareDebNames())
		if err != nil {
			realErr, realMissing = err, true
			return
		}
		start := time.Now()
		realMirror = newTestMirror(t, "", debs)
		t.Logf("fixture mirror from %d .debs: %d packages in %s", len(debs), len(realMirror.repo.Packages), time.Since(start).Round(time.Millisecond))
		ref := filepath.Join(scratch, "ref")
		for _, deb := range debs {
			if out, err := exec.Command(dpkgDeb, "-x", deb, ref).CombinedOutput(); err != nil {
				realErr = errors.New(string(out))
				return
			}
		}
		realMirror.ref = filepath.Join(ref, "lib/firmware")
	})
	if realMissing {
		testutil.Missing(t, "Debian firmware packages (.ci/run downloads them): %v", realErr)
	}
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realMirror
}

func (m testMirror) options(t testing.TB, cache string) FullOptions {
	t.Helper()
	keys, err := alpine.TrustedKeys(m.keys)
	if err != nil {
		t.Fatal(err)
	}
	return FullOptions{
		Source:  alpine.Source{Mirror: "file://" + m.dir, Version: "3.22", Arch: "x86_64"},
		Keys:    keys,
		Fetcher: download.New(download.Options{CacheDir: filepath.Join(cache, "downloads")}),
		Dir:     filepath.Join(cache, "linux-firmware"),
	}
}

// ctimes records the change time of every file under dir.
func ctimes(t testing.TB, dir string) map[string]syscall.Timespec {
	t.Helper()
	out := map[string]syscall.Timespec{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			var st syscall.Stat_t
			if syscall.Lstat(p, &st) == nil {
				out[p] = st.Ctim
			}
		}
		return nil
	})
	return out
}

// TestFullSetFromDebianFirmwareReadsBackFromFlist is the offline proof on
// real firmware: the fixture mirror's linux-firmware-* packages (made of
// Debian's firmware packages, Alpine's formats, signed) are downloaded,
// verified and extracted, FIRMWARE_DIR is laid over them, the tree is
// packed into an flist, and every file unpacked from the flist (pkg/flist)
// has the bytes dpkg-deb extracts from the .debs. A second run downloads
// nothing, leaves the tree's inodes alone and uploads no blob.
func TestFullSetFromDebianFirmwareReadsBackFromFlist(t *testing.T) {
	m := debMirror(t)
	cache := t.TempDir()
	opt := m.options(t, cache)
	overlay := t.TempDir()
	testutil.WriteFile(t, filepath.Join(overlay, "rtl_nic/rtl8168h-2.fw"), "maintainer's own rtl8168h-2.fw\n", 0o644)
	testutil.WriteFile(t, filepath.Join(overlay, "zos/extra.bin"), "added by FIRMWARE_DIR\n", 0o644)
	testutil.WriteFile(t, filepath.Join(overlay, "README.md"), "placeholder, not firmware\n", 0o644)
	opt.Overlay = overlay

	full, err := FullSet(t.Context(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first: %s", full)
	if full.Fetched != len(m.repo.Packages) || len(full.Packages) != len(m.repo.Packages) {
		t.Errorf("fetched %d of %d packages, want all %d", full.Fetched, len(full.Packages), len(m.repo.Packages))
	}
	refFiles := listTree(t, m.ref)
	if full.Files != len(refFiles.files)+1 || full.Overlaid != 2 {
		t.Errorf("tree: %d files (%d overlaid), want %d + 1 added", full.Files, full.Overlaid, len(refFiles.files))
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "downloads", "*", "*.apk")); len(left) != 0 {
		t.Errorf("downloaded .apk files kept after extraction: %v", left)
	}

	// Pack, unpack through pkg/flist, compare with the .debs.
	storeDir, fl := t.TempDir(), filepath.Join(t.TempDir(), "firmware.fl")
	pack := func() flist.Stats {
		st, err := flist.Pack(t.Context(), full.Tree, fl, flist.PackOptions{Store: store.NewDir(storeDir)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	first := pack()
	t.Logf("pack: %s", first)
	out := filepath.Join(t.TempDir(), "unpacked")
	// The test's own dir store: allowed explicitly, as every reader must.
	routes := store.RoutePolicy{AllowDirs: []string{os.TempDir()}}
	if err := flist.Unpack(t.Context(), fl, out, flist.UnpackOptions{Routes: routes}); err != nil {
		t.Fatal(err)
	}
	got := listTree(t, out)
	for rel, want := range refFiles.files {
		if rel == "rtl_nic/rtl8168h-2.fw" {
			want = []byte("maintainer's own rtl8168h-2.fw\n")
		}
		if b, ok := got.files[rel]; !ok || !bytes.Equal(b, want) {
			t.Errorf("%s: %d bytes read back from the flist (present %v), want %d", rel, len(b), ok, len(want))
		}
	}
	for rel, target := range refFiles.links {
		if got.links[rel] != target {
			t.Errorf("symlink %s -> %q, want %q", rel, got.links[rel], target)
		}
	}
	if b := got.files["zos/extra.bin"]; string(b) != "added by FIRMWARE_DIR\n" {
		t.Errorf("zos/extra.bin = %q", b)
	}
	if _, ok := got.files["README.md"]; ok {
		t.Error("FIRMWARE_DIR's README.md placeholder was packed")
	}
	if len(got.files) != len(refFiles.files)+1 || len(got.links) != len(refFiles.links) {
		t.Errorf("flist holds %d files and %d symlinks, the .debs %d and %d (+1 from FIRMWARE_DIR)", len(got.files), len(got.links), len(refFiles.files), len(refFiles.links))
	}

	// firmware:report against the packed flist's manifest.
	tree, err := FlistTree(t.Context(), fl)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := tree.Find("rtl_nic/rtl8168h-2.fw"); !ok || f != "rtl_nic/rtl8168h-2.fw" {
		t.Errorf("Find(rtl_nic/rtl8168h-2.fw) = %q, %v", f, ok)
	}
	// Every relative symlink that resolves to a file in the .debs resolves
	// in the manifest too.
	resolved := 0
	for rel, link := range refFiles.links {
		if st, err := os.Stat(filepath.Join(m.ref, rel)); err != nil || !st.Mode().IsRegular() || strings.HasPrefix(link, "/") {
			continue
		}
		resolved++
		if _, ok := tree.Find(rel); !ok {
			t.Errorf("symlink %s -> %s does not resolve in the flist's manifest", rel, link)
		}
	}
	if resolved == 0 {
		t.Error("the .debs have no symlink to a file: the symlink lookup went untested")
	}
	reportAgainstFlist(t, tree)

	// Unchanged set: nothing downloaded, no inode touched, nothing uploaded.
	before := ctimes(t, full.Tree)
	again, err := FullSet(t.Context(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second: %s", again)
	if again.Fetched != 0 || again.Files != full.Files {
		t.Errorf("second run fetched %d packages, %d files", again.Fetched, again.Files)
	}
	after := ctimes(t, full.Tree)
	for p, c := range before {
		if after[p] != c {
			t.Errorf("%s was touched by an unchanged re-assembly", p)
			break
		}
	}
	second := pack()
	t.Logf("re-pack: %s", second)
	if second.Uploaded != 0 || second.Reused != second.Files {
		t.Errorf("re-pack of the unchanged set: %d blobs uploaded, %d of %d files reused", second.Uploaded, second.Reused, second.Files)
	}
	// Even without reusing the previous flist, the store's blobs are not
	// uploaded again.
	third, err := flist.Pack(t.Context(), full.Tree, fl, flist.PackOptions{Store: store.NewDir(storeDir), NoReuse: true})
	if err != nil || third.Uploaded != 0 || third.Skipped == 0 {
		t.Errorf("re-pack without reuse: %d uploaded, %d skipped, %v", third.Uploaded, third.Skipped, err)
	}
}

// reportAgainstFlist reports real Debian modules against the packed flist:
// r8169 (rtl_nic, one file also in the image), iwlwifi (in the flist) and
// nfp (netronome firmware, not in the fixture set), checked against kmod's
// modinfo -F firmware.
func reportAgainstFlist(t *testing.T, tree Tree) {
	t.Helper()
	modinfo := testutil.RequireTool(t, "modinfo")
	dirs, _ := filepath.Glob("/lib/modules/*-amd64/kernel")
	if len(dirs) == 0 {
		testutil.Missing(t, "no Debian module tree (apt-get install linux-image-amd64)")
	}
	src := filepath.Dir(dirs[len(dirs)-1])
	ix, err := modules.Load("/", filepath.Base(src), modules.Options{NoStaleCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	root, version := t.TempDir(), "6.12.44-Zero-OS"
	declared := map[string][]string{}
	for _, m := range []string{"r8169", "iwlwifi", "nfp"} {
		p := ix.Path(m)
		dst := filepath.Join(root, "lib/modules", version, p)
		testutil.CopyFile(t, filepath.Join(src, p), dst, 0o644)
		out, err := exec.Command(modinfo, "-F", "firmware", dst).Output()
		if err != nil {
			t.Fatal(err)
		}
		declared[m] = strings.Fields(string(out))
		if len(declared[m]) == 0 {
			t.Fatalf("%s declares no firmware", m)
		}
	}
	inImage := declared["r8169"][0]
	testutil.WriteFile(t, filepath.Join(root, "lib/firmware", inImage), "in the image\n", 0o644)
	rep, err := BuildReport(root, version, tree)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]Status{}
	for _, it := range rep.Items {
		status[it.Firmware] = it.Status
	}
	for m, fws := range declared {
		for _, fw := range fws {
			want := Missing
			switch {
			case fw == inImage:
				want = InImage
			case m != "nfp":
				if _, err := os.Stat(filepath.Join(realMirror.ref, fw)); err == nil {
					want = InFlist
				}
			}
			if status[fw] != want {
				t.Errorf("%s (%s): %s, want %s", fw, m, status[fw], want)
			}
		}
	}
	if rep.Count(InImage) != 1 || rep.Count(InFlist) < 10 || rep.Count(Missing) < len(declared["nfp"]) {
		t.Errorf("report: %d in the image, %d in the flist, %d missing", rep.Count(InImage), rep.Count(InFlist), rep.Count(Missing))
	}
	t.Logf("report of r8169, iwlwifi, nfp: %d in the image, %d in the flist, %d missing", rep.Count(InImage), rep.Count(InFlist), rep.Count(Missing))
}

type treeFiles struct {
	files map[string][]byte
	links map[string]string
}

func listTree(t testing.TB, dir string) treeFiles {
	t.Helper()
	tf := treeFiles{files: map[string][]byte{}, links: map[string]string{}}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tf.files[rel] = b
		case d.Type()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			tf.links[rel] = l
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tf
}

// smallTree is a /lib/firmware of a few files.
func smallTree(t testing.TB) string {
	fw := t.TempDir()
	testutil.WriteFile(t, filepath.Join(fw, "rtl_nic/rtl8168h-2.fw"), "rtl8168h\n", 0o644)
	testutil.WriteFile(t, filepath.Join(fw, "bnx2/bnx2-mips-09-6.2.1b.fw"), "bnx2\n", 0o644)
	testutil.WriteFile(t, filepath.Join(fw, "top.bin"), "top\n", 0o644)
	return fw
}

// Nothing unverified is used: a tampered package, an untrusted index, an
// overlay that contradicts the packages each fail, naming what is wrong,
// and leave no package tree behind.
func TestFullSetRefuses(t *testing.T) {
	m := newTestMirror(t, smallTree(t), nil)
	main := filepath.Join(m.dir, "v3.22/main/x86_64")
	t.Run("package data tampered", func(t *testing.T) {
		opt := m.options(t, t.TempDir())
		apk := filepath.Join(main, "linux-firmware-rtl_nic-"+m.repo.Version+".apk")
		orig, _ := os.ReadFile(apk)
		t.Cleanup(func() { os.WriteFile(apk, orig, 0o644) })
		bad := bytes.Clone(orig)
		bad[len(bad)-20] ^= 0xff
		os.WriteFile(apk, bad, 0o644)
		_, err := FullSet(t.Context(), opt)
		if !errors.Is(err, download.ErrChecksum) || !strings.Contains(err.Error(), "linux-firmware-rtl_nic") {
			t.Fatalf("err = %v", err)
		}
		if ms, _ := filepath.Glob(filepath.Join(opt.Dir, "*/packages/linux-firmware-rtl_nic-*")); len(ms) != 0 {
			t.Errorf("tampered package extracted: %v", ms)
		}
	})
	t.Run("index signed by an untrusted key", func(t *testing.T) {
		opt := m.options(t, t.TempDir())
		opt.Keys = alpine.AlpineKeys() // production trust: Alpine's keys only
		if _, err := FullSet(t.Context(), opt); !errors.Is(err, alpine.ErrSignature) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("overlay file where the packages have a folder", func(t *testing.T) {
		opt := m.options(t, t.TempDir())
		opt.Overlay = t.TempDir()
		testutil.WriteFile(t, filepath.Join(opt.Overlay, "rtl_nic"), "a file\n", 0o644)
		if _, err := FullSet(t.Context(), opt); err == nil || !strings.Contains(err.Error(), "FIRMWARE_DIR") || !strings.Contains(err.Error(), "linux-firmware-rtl_nic") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("no firmware packages", func(t *testing.T) {
		opt := m.options(t, t.TempDir())
		opt.Repositories = []string{"community"}
		if _, err := FullSet(t.Context(), opt); err == nil || !strings.Contains(err.Error(), "no linux-firmware package") {
			t.Fatalf("err = %v", err)
		}
	})
}

// A package that changes is fetched again and its old tree removed; the
// others are left alone; files it no longer has leave the tree.
func TestFullSetUpdatesChangedPackages(t *testing.T) {
	fw := smallTree(t)
	m := newTestMirror(t, fw, nil)
	opt := m.options(t, t.TempDir())
	first, err := FullSet(t.Context(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if first.Fetched != len(first.Packages) || first.Files != 3 {
		t.Fatalf("first: %s", first)
	}
	// New content for rtl_nic: rebuilt package, same version, new checksum.
	os.Remove(filepath.Join(fw, "rtl_nic/rtl8168h-2.fw"))
	testutil.WriteFile(t, filepath.Join(fw, "rtl_nic/rtl8125b-2.fw"), "rtl8125b\n", 0o644)
	if _, err := fixtures.FirmwareMirror(t.Context(), m.dir, fixtures.FirmwareMirrorOptions{Tree: fw, Version: "3.22", Arch: "x86_64", Key: m.key}); err != nil {
		t.Fatal(err)
	}
	second, err := FullSet(t.Context(), opt)
	if err != nil {
		t.Fatal(err)
	}
	// Only rtl_nic's content changed (the meta package's is the same).
	if second.Fetched != 1 {
		t.Errorf("second run fetched %d packages, want 1 (rtl_nic)", second.Fetched)
	}
	if _, err := os.Stat(filepath.Join(second.Tree, "rtl_nic/rtl8168h-2.fw")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file the package dropped is still in the tree: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(second.Tree, "rtl_nic/rtl8125b-2.fw")); err != nil || string(b) != "rtl8125b\n" {
		t.Errorf("new file: %q, %v", b, err)
	}
	dirs, _ := filepath.Glob(filepath.Join(opt.Dir, "*/packages/linux-firmware-rtl_nic-*"))
	if len(dirs) != 1 {
		t.Errorf("package trees of rtl_nic: %v, want only the new one", dirs)
	}
}
