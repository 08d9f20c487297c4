package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// setup makes root/{d/,link -> outside, file} and outside/victim (0644).
func setup(t *testing.T) (root, victim string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "d"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	victim = filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("v"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(root, "d", "tovictim")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, victim
}

func TestDirNeverFollows(t *testing.T) {
	root, _ := setup(t)
	r, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tt := range []struct {
		rel    string
		create bool
		want   error
	}{
		{"link", false, ErrSymlink},
		{"link/new", true, ErrSymlink},
		{"file/x", true, ErrNotDir},
		{"d/../..", false, os.ErrInvalid},
	} {
		if d, err := r.Dir(tt.rel, tt.create); !errors.Is(err, tt.want) {
			t.Errorf("Dir(%q) = %v, %v; want %v", tt.rel, d, err, tt.want)
		}
	}
	d, err := r.Dir("a/b/c", true)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if st, err := os.Lstat(filepath.Join(root, "a/b/c")); err != nil || !st.IsDir() {
		t.Errorf("a/b/c: %v", err)
	}
}

// TestSetLeafNeverFollows: owner, mode and times of a symlink's name change
// the link (or fail), never its target.
func TestSetLeafNeverFollows(t *testing.T) {
	root, victim := setup(t)
	r, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := r.Dir("d", false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	before, _ := os.Stat(victim)
	if err := SetLeaf(d, "tovictim", os.Geteuid() == 0, 1, 1, true, 0o4777, time.Unix(5, 0)); err == nil {
		t.Error("chmod of a symlink succeeded")
	}
	if err := chmodNoFollowProc(int(d.Fd()), "tovictim", 0o4777); err == nil {
		t.Error("the /proc fallback chmod of a symlink succeeded")
	}
	if err := SetLeaf(d, "tovictim", os.Geteuid() == 0, 1, 1, false, 0, time.Unix(5, 0)); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(victim)
	if after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the target changed: %v %v -> %v %v", before.Mode(), before.ModTime(), after.Mode(), after.ModTime())
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "d", "tovictim"), &st); err != nil || st.Mtim.Sec != 5 {
		t.Errorf("the link's own mtime is %d, %v", st.Mtim.Sec, err)
	}
}

// TestChmodFallback: the /proc path used on kernels without fchmodat2 sets
// the mode of a FIFO.
func TestChmodFallback(t *testing.T) {
	root, _ := setup(t)
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := r.Dir("", false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := chmodNoFollowProc(int(d.Fd()), "fifo", 0o640); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Lstat(filepath.Join(root, "fifo")); st.Mode().Perm() != 0o640 {
		t.Errorf("fifo mode %v", st.Mode())
	}
}
