package download

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDiscard(t *testing.T) {
	src := filepath.Join(t.TempDir(), "pkg.apk")
	if err := os.WriteFile(src, []byte("package"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := New(Options{CacheDir: t.TempDir()})
	p, err := f.File(t.Context(), "file://"+src, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Discard(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("discarded file still there: %v", err)
	}
	if err := f.Discard(p); err != nil {
		t.Errorf("discarding twice: %v", err)
	}
	if err := f.Discard(src); err == nil {
		t.Error("a file outside the cache was discarded")
	}
	if _, err := os.Stat(src); err != nil {
		t.Errorf("the file outside the cache is gone: %v", err)
	}
}
