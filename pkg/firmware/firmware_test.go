package firmware

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/modules"
)

// recorder stands in for the apk runner (Alpine's repositories are not
// reachable here): it records the packages and writes a file for each, as
// apk would.
type recorder struct {
	root  string
	calls [][]string
}

func (r *recorder) Install(_ context.Context, pkgs []string) error {
	r.calls = append(r.calls, pkgs)
	for _, p := range pkgs {
		dir := filepath.Join(r.root, "lib/firmware", strings.TrimPrefix(p, PackagePrefix))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "from-apk.bin"), []byte(p), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func TestContractSelectRepoThenPackages(t *testing.T) {
	repo, root := t.TempDir(), t.TempDir()
	testutil.WriteFile(t, filepath.Join(repo, "rtl_nic/rtl8168h-2.fw"), "fw-a", 0o644)
	testutil.WriteFile(t, filepath.Join(repo, "rtl_nic/sub/rtl8125b-2.fw"), "fw-b", 0o644)
	if err := os.Symlink("rtl8168h-2.fw", filepath.Join(repo, "rtl_nic/alias.fw")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "bnx2"), 0o755); err != nil { // empty: not a repo entry
		t.Fatal(err)
	}
	inst := &recorder{root: root}
	opt := Options{Entries: []string{"rtl_nic", "bnx2", "intel"}, FirmwareDir: repo, RootDir: root, Installer: inst}
	sel, err := Select(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sel.FromRepo, []string{"rtl_nic"}) || !slices.Equal(sel.Packages, []string{"linux-firmware-bnx2", "linux-firmware-intel"}) {
		t.Fatalf("Selection = %+v", sel)
	}
	if len(inst.calls) != 1 {
		t.Fatalf("installer called %d times, want once with all packages", len(inst.calls))
	}
	fw := filepath.Join(root, "lib/firmware")
	if got := tree(t, fw); !slices.Equal(got, []string{"bnx2/from-apk.bin", "intel/from-apk.bin", "rtl_nic/alias.fw", "rtl_nic/rtl8168h-2.fw", "rtl_nic/sub/rtl8125b-2.fw"}) {
		t.Fatalf("lib/firmware = %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(fw, "rtl_nic/alias.fw")); string(b) != "fw-a" {
		t.Errorf("symlink content = %q", b)
	}
	// A file removed from the repository leaves the image on the next run.
	if err := os.RemoveAll(filepath.Join(repo, "rtl_nic/sub")); err != nil {
		t.Fatal(err)
	}
	if _, err := Select(context.Background(), opt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fw, "rtl_nic/sub")); !os.IsNotExist(err) {
		t.Errorf("removed repository file survived: %v", err)
	}
	if ents, _ := filepath.Glob(filepath.Join(fw, ".tmp-*")); len(ents) > 0 {
		t.Errorf("temporary directories left: %v", ents)
	}
}

func TestSelectErrors(t *testing.T) {
	repo, root := t.TempDir(), t.TempDir()
	for _, e := range []string{"../etc", "a/b", "", "-x"} {
		if _, err := Select(context.Background(), Options{Entries: []string{e}, FirmwareDir: repo, RootDir: root}); !errors.Is(err, ErrBadEntry) {
			t.Errorf("entry %q: err = %v, want ErrBadEntry", e, err)
		}
	}
	if _, err := Select(context.Background(), Options{Entries: []string{"bnx2"}, FirmwareDir: repo, RootDir: root}); err == nil || !strings.Contains(err.Error(), "linux-firmware-bnx2") {
		t.Errorf("no installer: err = %v", err)
	}
	testutil.WriteFile(t, filepath.Join(repo, "evil/x.fw"), "x", 0o644)
	if err := os.Symlink("../../outside", filepath.Join(repo, "evil/link.fw")); err != nil {
		t.Fatal(err)
	}
	if _, err := Select(context.Background(), Options{Entries: []string{"evil"}, FirmwareDir: repo, RootDir: root}); err == nil || !strings.Contains(err.Error(), "leaves the firmware folder") {
		t.Errorf("escaping symlink: err = %v", err)
	}
}

// TestBuildReportRealModules puts real Debian modules (r8169 declares its
// rtl_nic firmware, one copy xz-compressed) into an image and checks the
// report against kmod's modinfo -F firmware.
func TestBuildReportRealModules(t *testing.T) {
	modinfo := testutil.RequireTool(t, "modinfo")
	xzBin := testutil.RequireTool(t, "xz")
	dirs, _ := filepath.Glob("/lib/modules/*-amd64/kernel")
	if len(dirs) == 0 {
		testutil.Missing(t, "no Debian module tree (apt-get install linux-image-amd64)")
	}
	src := filepath.Dir(dirs[len(dirs)-1])
	ix, err := modules.Load("/", filepath.Base(src), modules.Options{NoStaleCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	root, flist := t.TempDir(), t.TempDir()
	version := "6.12.44-Zero-OS"
	modDir := filepath.Join(root, "lib/modules", version)
	var want []string
	for _, m := range []string{"r8169", "bnx2", "virtio_net"} {
		p := ix.Path(m)
		dst := filepath.Join(modDir, p)
		testutil.CopyFile(t, filepath.Join(src, p), dst, 0o644)
		out, err := exec.Command(modinfo, "-F", "firmware", dst).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, fw := range strings.Fields(string(out)) {
			want = append(want, fw+" "+p)
		}
		if m == "bnx2" {
			if out, err := exec.Command(xzBin, "--check=crc32", dst).CombinedOutput(); err != nil {
				t.Fatalf("xz: %v: %s", err, out)
			}
			for i := range want {
				want[i] = strings.Replace(want[i], p, p+".xz", 1)
			}
		}
	}
	sort.Strings(want)
	var r8169fw []string
	for _, w := range want {
		if strings.HasPrefix(w, "rtl_nic/") {
			r8169fw = append(r8169fw, strings.Fields(w)[0])
		}
	}
	if len(r8169fw) < 3 {
		t.Fatalf("r8169 declares %d firmware files, want several", len(r8169fw))
	}
	testutil.WriteFile(t, filepath.Join(root, "lib/firmware", r8169fw[0]), "in image", 0o644)
	testutil.WriteFile(t, filepath.Join(flist, r8169fw[1]+".zst"), "in flist, compressed", 0o644)
	rep, err := BuildReport(root, version, DirTree(flist))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	status := map[string]Status{}
	for _, it := range rep.Items {
		got = append(got, it.Firmware+" "+it.Module)
		status[it.Firmware] = it.Status
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("report items:\n%s\nwant (modinfo -F firmware):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if status[r8169fw[0]] != InImage || status[r8169fw[1]] != InFlist || status[r8169fw[2]] != Missing {
		t.Errorf("statuses = %v", status)
	}
	if rep.Count(Missing) != len(want)-2 || rep.Count(InImage) != 1 || rep.Count(InFlist) != 1 {
		t.Errorf("counts: image %d flist %d missing %d of %d", rep.Count(InImage), rep.Count(InFlist), rep.Count(Missing), len(want))
	}
	out := filepath.Join(t.TempDir(), "firmware-report.txt")
	if err := rep.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), "image\t"+r8169fw[0]+"\t") {
		t.Errorf("report file:\n%s", b)
	}
	// Without a flist source, what is not in the image is missing.
	rep, err = BuildReport(root, version, nil)
	if err != nil || rep.Count(InFlist) != 0 || rep.Count(Missing) != len(want)-1 {
		t.Errorf("without flist: %v, missing %d", err, rep.Count(Missing))
	}
}

func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// A folder kept in git by a README.md or .gitkeep holds no firmware: Select
// installs the Alpine package for such an entry, and the firmware flist
// packs the image's /lib/firmware instead.
func TestHasFilesIgnoresPlaceholders(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files []string
		want  bool
	}{
		{"missing folder", nil, false},
		{"only placeholders", []string{"README.md", "rtl_nic/.gitkeep"}, false},
		{"a firmware file", []string{"README.md", "rtl_nic/rtl8168h-2.fw"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "firmware")
			for _, f := range tt.files {
				p := filepath.Join(dir, f)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte("x"), 0o644)
			}
			if got, err := HasFiles(dir); got != tt.want || err != nil {
				t.Errorf("HasFiles = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
