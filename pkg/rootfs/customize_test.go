package rootfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// alpineRoot copies the Alpine-format account files from testdata.
func alpineRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	testutil.CopyFile(t, "testdata/alpine/passwd", filepath.Join(root, "etc/passwd"), 0o644)
	testutil.CopyFile(t, "testdata/alpine/shadow", filepath.Join(root, "etc/shadow"), 0o640)
	testutil.CopyFile(t, "testdata/alpine/securetty", filepath.Join(root, "etc/securetty"), 0o644)
	return root
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(data), "\n") {
		t.Errorf("%s lost its final newline", path)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// passwdStatus asks shadow-utils' passwd (an independent reader of passwd
// and shadow) for root's password status in the tree: L locked, NP none, P set.
func passwdStatus(t *testing.T, root string) string {
	t.Helper()
	tool := testutil.RequireTool(t, "passwd")
	if os.Geteuid() != 0 {
		testutil.Missing(t, "passwd -R needs root to chroot")
	}
	out, err := exec.Command(tool, "-S", "-R", root, "root").CombinedOutput()
	if err != nil {
		t.Fatalf("passwd -S -R: %v: %s", err, out)
	}
	return strings.Fields(string(out))[1]
}

func TestCustomizeAccounts(t *testing.T) {
	root := alpineRoot(t)
	if got := passwdStatus(t, root); got != "L" {
		t.Fatalf("Alpine fixture: root status %s, want L (locked)", got)
	}
	when := time.Date(2025, 11, 25, 10, 15, 0, 0, time.UTC)
	id, err := Customize(root, CustomizeOptions{Branding: true, Time: when, GitRevision: "0123456789abcdef0123456789abcdef01234567"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name, root string
		mode       os.FileMode
	}{
		{"passwd", "root::0:0:root:/root:/bin/sh", 0o644},
		{"shadow", "root:::0:::::", 0o640},
	} {
		path := filepath.Join(root, "etc", f.name)
		got, orig := lines(t, path), lines(t, "testdata/alpine/"+f.name)
		if len(got) != len(orig) {
			t.Fatalf("%s: %d lines, want %d", f.name, len(got), len(orig))
		}
		if got[0] != f.root {
			t.Errorf("%s root line = %q, want %q", f.name, got[0], f.root)
		}
		for i := 1; i < len(orig); i++ {
			if got[i] != orig[i] {
				t.Errorf("%s line %d changed: %q -> %q", f.name, i+1, orig[i], got[i])
			}
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != f.mode {
			t.Errorf("%s mode = %v, want %v", f.name, st.Mode(), f.mode)
		}
	}
	if got := passwdStatus(t, root); got != "NP" {
		t.Errorf("root status after Customize = %s, want NP (no password)", got)
	}
	if got := lines(t, filepath.Join(root, "etc/securetty")); !strings.Contains(strings.Join(got, " "), "ttyS0") || len(got) != 8 {
		t.Errorf("securetty = %q, want ttyS0 added once", got)
	}

	if !regexp.MustCompile(`^20251125T101500Z-g0123456789ab-f[0-9a-f]{16}$`).MatchString(id) {
		t.Errorf("build id %q", id)
	}
	stamp, _ := os.ReadFile(filepath.Join(root, "etc/zero-os-build-id"))
	if string(stamp) != id+"\n" {
		t.Errorf("%s = %q, want %q", BuildIDFile, stamp, id)
	}
	for _, f := range []string{"etc/issue", "etc/motd"} {
		b, _ := os.ReadFile(filepath.Join(root, f))
		if !strings.Contains(string(b), "Zero-OS") || !strings.Contains(string(b), id) {
			t.Errorf("%s = %q", f, b)
		}
	}

	// Idempotent: the same inputs on the customized tree give the same id
	// and leave every file as it was.
	before, _ := Fingerprint(root)
	id2, err := Customize(root, CustomizeOptions{Branding: true, Time: when, GitRevision: "0123456789abcdef0123456789abcdef01234567"})
	if err != nil || id2 != id {
		t.Errorf("second run: id %q, %v; want %q", id2, err, id)
	}
	if after, _ := Fingerprint(root); after != before {
		t.Error("second run changed the tree")
	}
}

func TestCustomizeExplicitIDAndNoBranding(t *testing.T) {
	root := alpineRoot(t)
	os.Remove(filepath.Join(root, "etc/shadow"))
	os.Remove(filepath.Join(root, "etc/securetty"))
	id, err := Customize(root, CustomizeOptions{BuildID: "custom-1"})
	if err != nil || id != "custom-1" {
		t.Fatal(id, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/issue")); !os.IsNotExist(err) {
		t.Error("branding written without Branding")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/shadow")); !os.IsNotExist(err) {
		t.Error("shadow created")
	}
	if got := lines(t, filepath.Join(root, "etc/passwd"))[0]; got != "root::0:0:root:/root:/bin/sh" {
		t.Errorf("passwd root = %q", got)
	}
}

func TestCustomizeShadowWithoutRoot(t *testing.T) {
	root := alpineRoot(t)
	testutil.WriteTree(t, root, map[string]string{"etc/shadow": "bin:!::0:::::"}) // no final newline
	if _, err := Customize(root, CustomizeOptions{BuildID: "x"}); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, filepath.Join(root, "etc/shadow")); len(got) != 2 || got[0] != "bin:!::0:::::" || got[1] != "root::::::::" {
		t.Errorf("shadow = %q", got)
	}
}

func TestCustomizeErrors(t *testing.T) {
	root := t.TempDir()
	testutil.WriteTree(t, root, map[string]string{"etc/passwd": "bin:x:1:1:bin:/bin:/sbin/nologin\n"})
	if _, err := Customize(root, CustomizeOptions{BuildID: "x"}); !errors.Is(err, ErrNoRootUser) {
		t.Errorf("passwd without root: %v", err)
	}
	testutil.WriteTree(t, root, map[string]string{"etc/shadow": "root:*:0\n"})
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	if _, err := Customize(root, CustomizeOptions{BuildID: "x"}); err == nil || !strings.Contains(err.Error(), "shadow:1: 3 fields") {
		t.Errorf("malformed shadow: %v", err)
	}
	if _, err := Customize(t.TempDir(), CustomizeOptions{BuildID: "x"}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no passwd: %v", err)
	}
}

func TestBuildID(t *testing.T) {
	when := time.Unix(1700000000, 0)
	for _, tc := range []struct{ rev, fp, want string }{
		{"0123456789abcdef0123456789abcdef01234567", "fedcba9876543210fedcba", "20231114T221320Z-g0123456789ab-ffedcba9876543210"},
		{"abc1234-dirty", "00", "20231114T221320Z-gabc1234-dirty-f00"},
		{"", "11", "20231114T221320Z-gunknown-f11"},
		{"a b/c\n", "22", "20231114T221320Z-gabc-f22"},
	} {
		if got := BuildID(when, tc.rev, tc.fp); got != tc.want {
			t.Errorf("BuildID(%q, %q) = %q, want %q", tc.rev, tc.fp, got, tc.want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	mk := func() string {
		root := t.TempDir()
		testutil.WriteTree(t, root, map[string]string{"a/b": "x", "run*": "#!/bin/sh\n", "l@": "a/b", "etc/zero-os-build-id": "1\n"})
		return root
	}
	r1, r2 := mk(), mk()
	f1, err := Fingerprint(r1)
	if err != nil {
		t.Fatal(err)
	}
	if f2, _ := Fingerprint(r2); f2 != f1 {
		t.Fatal("identical trees differ")
	}
	excl, _ := Fingerprint(r1, BuildIDFile)
	os.WriteFile(filepath.Join(r1, "etc/zero-os-build-id"), []byte("2\n"), 0o644)
	if got, _ := Fingerprint(r1, BuildIDFile); got != excl {
		t.Error("excluded file changed the fingerprint")
	}
	for name, change := range map[string]func(root string){
		"content": func(r string) { os.WriteFile(filepath.Join(r, "a/b"), []byte("y"), 0o644) },
		"mode":    func(r string) { os.Chmod(filepath.Join(r, "run"), 0o700) },
		"symlink": func(r string) { os.Remove(filepath.Join(r, "l")); os.Symlink("a", filepath.Join(r, "l")) },
		"new":     func(r string) { os.WriteFile(filepath.Join(r, "a/c"), nil, 0o644) },
		"rename":  func(r string) { os.Rename(filepath.Join(r, "a/b"), filepath.Join(r, "a/B")) },
	} {
		r := mk()
		change(r)
		if got, _ := Fingerprint(r); got == f1 {
			t.Errorf("%s change not seen", name)
		}
	}
}

func TestResolveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	testutil.WriteTree(t, root, map[string]string{
		"bin/busybox": "x", "bin/sh@": "busybox", "usr/bin/env@": "../../bin/sh",
		"escape@": "../../../../etc/passwd", "abs@": "/etc/passwd", "etc/passwd": "in-root",
		"loop1@": "loop2", "loop2@": "loop1",
	})
	for in, want := range map[string]string{
		"/usr/bin/env": "bin/busybox", "/escape": "etc/passwd", "abs": "etc/passwd", "/bin/../bin/./sh": "bin/busybox",
	} {
		got, err := Resolve(root, in)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("Resolve(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := Resolve(root, "/loop1"); !errors.Is(err, ErrLinkLoop) {
		t.Errorf("loop: %v", err)
	}
	if _, err := Resolve(root, "/missing/x"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

func TestInstallInit(t *testing.T) {
	src := filepath.Join(t.TempDir(), "init")
	root := t.TempDir()
	os.WriteFile(src, []byte("#!/bin/sh\nexec /sbin/zinit init\n"), 0o600)
	testutil.WriteTree(t, root, map[string]string{"init": "old"})
	if err := InstallInit(src, root); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, "init"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("/init: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "init")); !strings.HasPrefix(string(b), "#!/bin/sh") {
		t.Errorf("/init = %q", b)
	}
	os.WriteFile(src, []byte("echo no shebang\n"), 0o755)
	if err := InstallInit(src, root); !errors.Is(err, ErrNotExecutable) {
		t.Errorf("init without #!: %v", err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
