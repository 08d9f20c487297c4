package fingerprint

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func tree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc/zinit"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("zos\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "init"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Symlink("init", filepath.Join(root, "linuxrc")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	return root
}

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// The format is documented and the stage engine's markers depend on it:
// changing it reruns every stage whose input is a folder.
func TestTreeFormat(t *testing.T) {
	root := tree(t)
	got, err := Tree(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := sum("D etc 755\n" +
		"F etc/hostname 644 " + sum("zos\n") + "\n" +
		"D etc/zinit 755\n" +
		"S fifo prw-------\n" +
		"F init 755 " + sum("#!/bin/sh\n") + "\n" +
		"L linuxrc init\n")
	if got != want {
		t.Errorf("Tree = %s, want %s", got, want)
	}
}

func TestTreeSeesWhatMatters(t *testing.T) {
	base := func() string {
		t.Helper()
		fp, err := Tree(tree(t), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return fp
	}()
	changes := map[string]func(root string) error{
		"content": func(r string) error { return os.WriteFile(filepath.Join(r, "etc/hostname"), []byte("zos2\n"), 0o644) },
		"mode":    func(r string) error { return os.Chmod(filepath.Join(r, "init"), 0o700) },
		"setuid":  func(r string) error { return os.Chmod(filepath.Join(r, "init"), 0o755|fs.ModeSetuid) },
		"symlink target": func(r string) error {
			os.Remove(filepath.Join(r, "linuxrc"))
			return os.Symlink("/init", filepath.Join(r, "linuxrc"))
		},
		"empty folder": func(r string) error { return os.Mkdir(filepath.Join(r, "var"), 0o755) },
		"rename":       func(r string) error { return os.Rename(filepath.Join(r, "init"), filepath.Join(r, "init2")) },
	}
	for name, change := range changes {
		root := tree(t)
		if err := change(root); err != nil {
			t.Fatal(err)
		}
		if fp, _ := Tree(root, Options{}); fp == base {
			t.Errorf("%s: same fingerprint", name)
		}
	}
	root := tree(t)
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(root, "init"), old, old)
	if fp, _ := Tree(root, Options{}); fp != base {
		t.Error("a new mtime changed the fingerprint")
	}
}

func TestTreeOptions(t *testing.T) {
	root := tree(t)
	skipped, err := Tree(root, Options{Skip: func(rel string, d fs.DirEntry) bool { return rel == "etc" }})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc/zinit/new.yaml"), []byte("exec: x\n"), 0o644)
	if again, _ := Tree(root, Options{Skip: func(rel string, d fs.DirEntry) bool { return rel == "etc" }}); again != skipped {
		t.Error("a change inside a skipped folder changed the fingerprint")
	}
	var hashed []string
	_, err = Tree(root, Options{File: func(path string, _ fs.FileInfo) (string, error) {
		hashed = append(hashed, filepath.Base(path))
		return "x", nil
	}})
	if err != nil || len(hashed) != 3 {
		t.Errorf("File hook called for %v, %v", hashed, err)
	}
	if _, err := Tree(filepath.Join(root, "missing"), Options{}); err == nil {
		t.Error("a missing root fingerprints")
	}
}
