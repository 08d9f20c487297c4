package alpine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/pkg/download"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExtractAndConfigureFromMirror(t *testing.T) {
	m := newMirror(t)
	root := filepath.Join(t.TempDir(), "initramfs")
	got, err := Extract(context.Background(), ExtractOptions{Source: m.source(), InstallDir: root, Fetcher: testFetcher(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != testRelease || got.File != tarballName || got.SHA256 != m.tarSum {
		t.Errorf("resolved %+v", got)
	}
	// The extracted busybox is the real static binary and runs.
	out, err := exec.Command(filepath.Join(root, "bin/busybox"), "echo", "alive").Output()
	if err != nil || strings.TrimSpace(string(out)) != "alive" {
		t.Fatalf("extracted busybox: %q, %v", out, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "bin/ls")); err != nil || l != "/bin/busybox" {
		t.Errorf("bin/ls -> %q, %v", l, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "dev/null")); err == nil {
		t.Error("device node dev/null was extracted")
	}
	if st, err := os.Stat(filepath.Join(root, "tmp")); err != nil || st.Mode().Perm() != 0o777 || st.Mode()&os.ModeSticky == 0 {
		t.Errorf("tmp mode: %v %v", st.Mode(), err)
	}

	if err := Configure(root, ConfigureOptions{Source: m.source()}); err != nil {
		t.Fatal(err)
	}
	wantRepos := m.URL + "/v3.22/main\n" + m.URL + "/v3.22/community\n"
	if got := readFile(t, filepath.Join(root, "etc/apk/repositories")); got != wantRepos {
		t.Errorf("repositories = %q, want %q", got, wantRepos)
	}
	if got := readFile(t, filepath.Join(root, "etc/hostname")); got != "zero-os\n" {
		t.Errorf("hostname = %q", got)
	}
	if got := readFile(t, filepath.Join(root, "etc/resolv.conf")); !strings.Contains(got, "nameserver ") {
		t.Errorf("resolv.conf = %q", got)
	}
	for _, p := range []string{"etc/inittab", "etc/init.d", "etc/runlevels", "etc/conf.d"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Configure: %v", p, err)
		}
	}
	// Configure is idempotent.
	if err := Configure(root, ConfigureOptions{Source: m.source(), Hostname: "node1", Nameservers: []string{"10.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "etc/resolv.conf")); got != "nameserver 10.0.0.1\n" {
		t.Errorf("resolv.conf = %q", got)
	}
}

func TestExtractPinnedMakesNoIndexRequestAndIsIdempotent(t *testing.T) {
	m := newMirror(t)
	f := testFetcher(t)
	root := filepath.Join(t.TempDir(), "root")
	opt := ExtractOptions{Source: m.source(), MinirootfsVersion: testRelease, MinirootfsSHA256: m.tarSum, InstallDir: root, Fetcher: f}
	if _, err := Extract(context.Background(), opt); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, "etc/stale")
	if err := os.WriteFile(stale, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A read-only directory left by an earlier run must not block the swap.
	if err := os.Chmod(filepath.Join(root, "etc/apk"), 0o555); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(context.Background(), opt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Error("second extraction kept a stale file")
	}
	if n := m.count(releasesPath + "latest-releases.yaml"); n != 0 {
		t.Errorf("pinned release fetched latest-releases.yaml %d times", n)
	}
	if n := m.count(releasesPath + tarballName); n != 1 {
		t.Errorf("tarball fetched %d times, want 1 (warm cache)", n)
	}
	assertNoLeftovers(t, filepath.Dir(root), "root")
}

func assertNoLeftovers(t *testing.T, parent string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("%s holds %v, want %v", parent, names, want)
	}
}

func TestExtractPinnedVersionReadsSHA256File(t *testing.T) {
	m := newMirror(t)
	got, err := ResolveMinirootfs(context.Background(), testFetcher(t), m.source(), testRelease, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != m.tarSum || m.count(releasesPath+tarballName+".sha256") != 1 {
		t.Errorf("got %+v, .sha256 fetched %d times", got, m.count(releasesPath+tarballName+".sha256"))
	}
}

func TestExtractWrongChecksumKeepsPreviousTree(t *testing.T) {
	m := newMirror(t)
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/previous"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("ab", 32)
	_, err := Extract(context.Background(), ExtractOptions{Source: m.source(), MinirootfsVersion: testRelease,
		MinirootfsSHA256: wrong, InstallDir: root, Fetcher: testFetcher(t)})
	if !errors.Is(err, download.ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	for _, s := range []string{wrong, m.tarSum, tarballName} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	if got := readFile(t, filepath.Join(root, "etc/previous")); got != "kept" {
		t.Error("previous tree was damaged")
	}
	assertNoLeftovers(t, parent, "root")
}

func TestExtractRecoversFromDroppedConnection(t *testing.T) {
	m := newMirror(t)
	m.drops[releasesPath+tarballName] = 1
	root := filepath.Join(t.TempDir(), "root")
	if _, err := Extract(context.Background(), ExtractOptions{Source: m.source(), InstallDir: root, Fetcher: testFetcher(t)}); err != nil {
		t.Fatal(err)
	}
	if n := m.count(releasesPath + tarballName); n != 2 {
		t.Errorf("tarball requested %d times, want 2 (one drop, one retry)", n)
	}
	if _, err := os.Stat(filepath.Join(root, "bin/busybox")); err != nil {
		t.Error(err)
	}
}

func TestExtractFileMirror(t *testing.T) {
	m := newMirror(t)
	src := Source{Mirror: "file://" + m.dir, Version: testVersion}
	root := filepath.Join(t.TempDir(), "root")
	if _, err := Extract(context.Background(), ExtractOptions{Source: src, InstallDir: root, Fetcher: testFetcher(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bin/busybox")); err != nil {
		t.Error(err)
	}
}

func TestResolveErrors(t *testing.T) {
	m := newMirror(t)
	m.put(t, "/v3.21/releases/x86_64/latest-releases.yaml", []byte("- flavor: alpine-standard\n  file: x.iso\n"))
	m.put(t, "/v3.20/releases/x86_64/latest-releases.yaml", []byte("{not yaml"))
	for _, tt := range []struct{ version, want string }{
		{"3.21", "no alpine-minirootfs release"},
		{"3.20", "parse"},
		{"3.19", "404"},
	} {
		_, err := ResolveMinirootfs(context.Background(), testFetcher(t), Source{Mirror: m.URL, Version: tt.version}, "", "")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "latest-releases.yaml") {
			t.Errorf("v%s: err = %v, want %q and the URL", tt.version, err, tt.want)
		}
	}
}

func TestConfigureStaysInsideRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	outside := filepath.Join(parent, "outside")
	for _, d := range []string{filepath.Join(root, "etc"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "etc/apk")); err != nil {
		t.Fatal(err)
	}
	err := Configure(root, ConfigureOptions{Source: Source{Mirror: "https://m", Version: "3.22"}})
	if err == nil {
		t.Fatal("Configure wrote through a symlink leading outside the root")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("files written outside the root: %v", ents)
	}
}

func TestPackageName(t *testing.T) {
	for spec, want := range map[string]string{
		"busybox": "busybox", "busybox>=1.36": "busybox", "musl~1.2": "musl", "foo@testing": "foo",
		"linux-firmware-rtl_nic": "linux-firmware-rtl_nic", "a<2": "a", "so:libc.musl-x86_64.so.1": "so:libc.musl-x86_64.so.1",
	} {
		if got := (Package{Spec: spec}).Name(); got != want {
			t.Errorf("Name(%q) = %q, want %q", spec, got, want)
		}
	}
}

func TestParseIndex(t *testing.T) {
	entries, err := ParseIndex(strings.NewReader("C:Q1Z6Zg6hxRXRQJmfrJ0p3Xu8R0gqE=\nP:musl\nV:1.2.5-r10\nA:x86_64\nS:412345\nD:so:libc\n\nP:busybox\nV:1.37.0-r18\nC:Q1Z6Zg6hxRXRQJmfrJ0p3Xu8R0gqE=\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Name != "musl" || entries[0].Size != 412345 || len(entries[0].Checksum) != 20 || entries[1].Version != "1.37.0-r18" {
		t.Errorf("entries = %+v", entries)
	}
	for _, bad := range []string{"garbage line\n", "P:x\nC:abc\n", "P:x\nC:Q1!!!\n"} {
		if _, err := ParseIndex(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseIndex(%q) accepted", bad)
		}
	}
}

// TestResolveRefusesEscapingNames is item 10 for latest-releases.yaml: a
// file name that is "..", "." or holds a separator or NUL is refused.
func TestResolveRefusesEscapingNames(t *testing.T) {
	m := newMirror(t)
	for i, name := range []string{"..", ".", "a/../b", `..\x`, "x\x00y"} {
		v := fmt.Sprintf("3.%d", 30+i)
		m.put(t, "/v"+v+"/releases/x86_64/latest-releases.yaml",
			[]byte(fmt.Sprintf("- flavor: alpine-minirootfs\n  arch: x86_64\n  version: %s.0\n  file: %q\n  sha256: %s\n", v, name, strings.Repeat("a", 64))))
		got, err := ResolveMinirootfs(context.Background(), testFetcher(t), Source{Mirror: m.URL, Version: v}, "", "")
		if err == nil {
			t.Errorf("file %q: resolved to %+v", name, got)
		}
	}
}
