package testutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// recorder is a testing.TB that records Errorf calls instead of failing.
type recorder struct {
	testing.TB
	errors int
}

func (r *recorder) Errorf(string, ...any) { r.errors++ }

// TestCompareTreesDetects is the negative control of CompareTrees: each
// kind of difference it must catch is caught.
func TestCompareTreesDetects(t *testing.T) {
	src := t.TempDir()
	MakeTree(t, src)
	changes := map[string]func(dir string) error{
		"content": func(d string) error {
			return os.WriteFile(filepath.Join(d, "hello.txt"), []byte("hello World\n"), 0o644)
		},
		"mode": func(d string) error { return os.Chmod(filepath.Join(d, "bin/setuid"), 0o755) },
		"target": func(d string) error {
			p := filepath.Join(d, "rel-link")
			return errors.Join(os.Remove(p), os.Symlink("hello.txt ", p))
		},
		"missing": func(d string) error { return os.Remove(filepath.Join(d, "empty")) },
		"extra":   func(d string) error { return os.WriteFile(filepath.Join(d, "new"), nil, 0o644) },
		"mtime": func(d string) error {
			return os.Chtimes(filepath.Join(d, "a/b/c/deep.txt"), time.Now(), time.Now())
		},
	}
	cp := RequireTool(t, "cp")
	for name, change := range changes {
		dst := filepath.Join(t.TempDir(), "copy")
		if out, err := exec.Command(cp, "-a", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v: %s", err, out)
		}
		r := &recorder{TB: t}
		CompareTrees(r, src, dst)
		if r.errors != 0 {
			t.Fatalf("%s: two trees made alike differ", name)
		}
		if err := change(dst); err != nil {
			t.Fatal(err)
		}
		CompareTrees(r, src, dst)
		if r.errors == 0 {
			t.Errorf("%s: difference not detected", name)
		}
	}
}
