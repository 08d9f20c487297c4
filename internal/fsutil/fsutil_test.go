package fsutil

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteFileReplacesAtomicallyWithExactMode(t *testing.T) {
	old := syscall.Umask(0o077) // a strict umask must not change the mode asked for
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f")
	for i, write := range []func(string, []byte, os.FileMode) error{WriteFile, WriteFileSync} {
		content := []byte(strings.Repeat("x", i+1))
		if err := write(p, content, 0o755); err != nil {
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
