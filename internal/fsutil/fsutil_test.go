package fsutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWriteFileReplacesAtomicallyWithExactMode(t *testing.T) {
	old := syscall.Umask(0o077) // a strict umask must not change the mode asked for
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f")
	for i, opts := range [][]Option{nil, {Sync()}} {
		content := []byte(strings.Repeat("x", i+1))
		if err := WriteFile(p, content, 0o755, opts...); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		st, _ := os.Stat(p)
		if string(b) != string(content) || st.Mode().Perm() != 0o755 {
			t.Errorf("write %d: %q %v", i, b, st.Mode())
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sub"))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestCopyFileFailureKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "dst")
	os.WriteFile(dst, []byte("old"), 0o644)
	if err := CopyFile(filepath.Join(dir, "missing"), dst, 0o644); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("copy of a missing file: %v", err)
	}
	// A folder cannot be read as a file: the copy fails after the
	// temporary file was created, and the old content stays.
	if err := CopyFile(dir, dst, 0o644); err == nil {
		t.Fatal("copy of a folder succeeded")
	}
	if b, _ := os.ReadFile(dst); string(b) != "old" {
		t.Errorf("dst = %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte("new"), 0o600)
	if err := CopyFile(src, dst, 0o640); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "new" {
		t.Errorf("dst = %q", b)
	}
}

func TestLastLines(t *testing.T) {
	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat("x", i%7) + "\n")
	}
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, []byte(b.String()), 0o644)
	got := FileLastLines(p, 40)
	if n := strings.Count(got, "\n") + 1; n != 40 || !strings.HasSuffix(b.String(), got+"\n") {
		t.Errorf("FileLastLines gave %d lines", n)
	}
	if LastLines([]byte("a\nb\n"), 5) != "a\nb" || FileLastLines(filepath.Join(p, "nope"), 3) != "" {
		t.Error("short input or missing file")
	}
}

func TestCreateCommitAndCleanup(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	when := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	f, err := Create(p, 0o640, ModTime(when), KeepOwner())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Cleanup()
	if !IsTemp(filepath.Base(f.Name())) || filepath.Dir(f.Name()) != dir {
		t.Errorf("temporary file %s: not a temporary name beside %s", f.Name(), p)
	}
	if _, err := f.WriteString("data"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("the final path exists before Commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o640 || !st.ModTime().Equal(when) {
		t.Errorf("after Commit: %v %v", st, err)
	}
	if f.Commit() == nil {
		t.Error("a second Commit succeeded")
	}

	g, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteString("discarded")
	g.Cleanup()
	g.Cleanup()
	if b, _ := os.ReadFile(p); string(b) != "data" {
		t.Errorf("Cleanup changed the file: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestKeepOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file another owner")
	}
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("old"), 0o644)
	if err := os.Chown(p, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new"), 0o644, KeepOwner()); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 1234 || sys.Gid != 5678 {
		t.Errorf("owner %d:%d, want 1234:5678", sys.Uid, sys.Gid)
	}
	if err := WriteFile(p, []byte("newer"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ = os.Stat(p)
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 {
		t.Errorf("without KeepOwner the owner is %d, want the writer's", sys.Uid)
	}
}

func TestWriteFileInReplacesSymlinkAndStaysInRoot(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	os.WriteFile(outside, []byte("keep"), 0o644)
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.Symlink("../../outside", filepath.Join(root, "etc", "hosts")); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := WriteFileIn(r, "etc/hosts", []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Errorf("the symlink was followed: outside = %q", b)
	}
	if st, err := os.Lstat(filepath.Join(root, "etc", "hosts")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("etc/hosts: %v %v", st, err)
	}
	if err := WriteFileIn(r, "../escape", []byte("x"), 0o644); err == nil {
		t.Error("WriteFileIn wrote outside its root")
	}
	if err := WriteFileIn(r, "new/dir/file", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReplaceDir(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "tree")
	for i, content := range []string{"one", "two"} {
		fresh, err := os.MkdirTemp(dir, ".fresh-")
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(fresh, "f"), []byte(content), 0o644)
		if i == 1 {
			// the old tree has a folder its owner cannot write
			os.MkdirAll(filepath.Join(dst, "ro", "sub"), 0o755)
			os.Chmod(filepath.Join(dst, "ro"), 0o500)
		}
		if err := ReplaceDir(fresh, dst); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dst, "f")); string(b) != content {
			t.Errorf("replacement %d: f = %q", i, b)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left beside the tree: %v", entries)
	}
}

func TestSyncFS(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// a FIFO must not block, a missing path is skipped
	if err := SyncFS(dir, filepath.Join(dir, "fifo"), filepath.Join(dir, "missing")); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveAllReadOnlyTree removes a tree with folders their owner cannot
// write or read, as an unprivileged user: root would not need the help, so
// under root the test runs itself again as nobody.
func TestRemoveAllReadOnlyTree(t *testing.T) {
	dir := os.Getenv("FSUTIL_TEST_DIR")
	if dir == "" && os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "fsutil-remove-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o777)
		// The test binary's own folder is private to root: nobody runs a copy.
		bin := filepath.Join(dir, "fsutil.test")
		if err := CopyFile(os.Args[0], bin, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^TestRemoveAllReadOnlyTree$", "-test.v")
		cmd.Env = append(os.Environ(), "FSUTIL_TEST_DIR="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return
	}
	if dir == "" {
		dir = t.TempDir()
	}
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(tree, d, "f"), []byte("x"), 0o444)
	}
	os.Chmod(filepath.Join(tree, "a/b"), 0o555)
	os.Chmod(filepath.Join(tree, "a"), 0o555)
	os.Chmod(filepath.Join(tree, "c"), 0o000)
	if err := os.RemoveAll(tree); err == nil {
		t.Fatal("os.RemoveAll removed the read-only tree: the test proves nothing")
	}
	if err := RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(tree); !os.IsNotExist(err) {
		t.Errorf("tree still there: %v", err)
	}
}

// A tool that writes the temporary file by name may replace it (sqlite
// removes and creates its database file): Commit follows the name.
func TestCommitFollowsAReplacedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.db")
	f, err := Create(p, 0o640, Sync())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Cleanup()
	f.WriteString("written through the first file")
	if err := os.Remove(f.Name()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Name(), []byte("the tool's file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "the tool's file" || st.Mode().Perm() != 0o640 {
		t.Errorf("%q %v", b, st.Mode())
	}
}
