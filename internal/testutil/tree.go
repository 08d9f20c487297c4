package testutil

import (
	"bytes"
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// blockSize is the size rfs cuts files into (flist.BlockSize): MakeTree's
// files sit at its boundaries.
const blockSize = 512 * 1024

// MakeTree builds a source tree with every file type pack handles: regular
// files at the block boundaries, duplicates and a hardlink (one blob, several
// rows), symlinks (relative, absolute, dangling, to a directory), odd modes,
// an empty directory, a FIFO, and, as root, a char device and other owners.
func MakeTree(t testing.TB, root string) {
	t.Helper()
	random := func(n int) []byte {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	files := []struct {
		path string
		data []byte
		mode uint32 // raw st_mode bits, setuid included
	}{
		{"empty", nil, 0o644},
		{"hello.txt", []byte("hello world\n"), 0o644},
		{"exact-512k.bin", random(blockSize), 0o600},
		{"plus-one.bin", random(blockSize + 1), 0o640},
		{"big/random-3m.bin", random(3*blockSize*2 + 17), 0o644},
		{"big/compressible.txt", bytes.Repeat([]byte("lib/modules/6.1.0 text\n"), 100000), 0o644},
		{"bin/setuid", []byte("#!/bin/sh\necho hi\n"), 0o4755},
		{"a/b/c/deep.txt", []byte("deep"), 0o444},
		{"dup/one.txt", []byte("same content\n"), 0o644},
		{"dup/two.txt", []byte("same content\n"), 0o644},
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Link(filepath.Join(root, "hello.txt"), filepath.Join(root, "dup/hardlink.txt")))
	must(os.Symlink("hello.txt", filepath.Join(root, "rel-link")))
	must(os.Symlink("/etc/hostname", filepath.Join(root, "abs-link")))
	must(os.Symlink("../nowhere", filepath.Join(root, "a/dangling")))
	must(os.Symlink("a/b", filepath.Join(root, "dir-link")))
	must(os.MkdirAll(filepath.Join(root, "empty-dir"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "private"), 0o700))
	must(unix.Mkfifo(filepath.Join(root, "a/fifo"), 0o644))
	if os.Geteuid() == 0 {
		must(os.MkdirAll(filepath.Join(root, "dev"), 0o755))
		must(unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(os.Lchown(filepath.Join(root, "hello.txt"), 1234, 5678))
		must(os.Lchown(filepath.Join(root, "rel-link"), 42, 43))
		must(os.Chown(filepath.Join(root, "private"), 1000, 1000))
	}
	// Fixed times, so a second pack of the same tree sees the same metadata.
	stamp := time.Date(2024, 8, 15, 12, 0, 0, 0, time.UTC)
	must(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(stamp.UnixNano()), unix.NsecToTimespec(stamp.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}

// entry is what compareTrees looks at for one path.
type entry struct {
	mode     uint32 // full st_mode
	uid, gid uint32
	rdev     uint64
	mtime    int64
	content  []byte // regular files
	target   string // symlinks
}

func scanTree(t testing.TB, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entry{mode: st.Mode, uid: st.Uid, gid: st.Gid, rdev: st.Rdev, mtime: st.Mtim.Sec}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if e.content, err = os.ReadFile(p); err != nil {
				return err
			}
		case unix.S_IFLNK:
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if rel == "." {
			// The root's times and mode come from the flist root, but
			// the test's temp dirs differ in nothing else that matters.
			e.mtime = 0
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// CompareTrees fails unless both trees hold the same paths with the same
// type, mode, content, link targets, device numbers, mtimes and, as root,
// owners.
func CompareTrees(t testing.TB, want, got string) {
	t.Helper()
	a, b := scanTree(t, want), scanTree(t, got)
	var paths []string
	for p := range a {
		paths = append(paths, p)
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			t.Errorf("%s: extra in %s", p, got)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		x, y := a[p], b[p]
		if _, ok := b[p]; !ok {
			t.Errorf("%s: missing in %s", p, got)
			continue
		}
		if x.mode != y.mode || x.rdev != y.rdev || x.target != y.target || !bytes.Equal(x.content, y.content) {
			t.Errorf("%s: mode %o rdev %d target %q %d bytes, want mode %o rdev %d target %q %d bytes",
				p, y.mode, y.rdev, y.target, len(y.content), x.mode, x.rdev, x.target, len(x.content))
		}
		if x.mtime != y.mtime {
			t.Errorf("%s: mtime %d, want %d", p, y.mtime, x.mtime)
		}
		if os.Geteuid() == 0 && (x.uid != y.uid || x.gid != y.gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, y.uid, y.gid, x.uid, x.gid)
		}
	}
}
