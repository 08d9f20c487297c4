package flist

import (
	"database/sql"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// exercise runs every read path over an flist that may be corrupt: it must
// return errors, never panic, and never write outside the unpack target.
func exercise(t *testing.T, fl string) {
	r, err := Open(fl)
	if err != nil {
		return
	}
	defer r.Close()
	_ = r.Tree(ctx, io.Discard)
	_ = r.Inspect(ctx, io.Discard)
	_, _ = r.Routes(ctx)
	_, _ = r.Tags(ctx)
	_ = r.EachBlock(ctx, func(int64, Block) error { return nil })
	_ = r.Walk(ctx, func(_ string, in *Inode) error {
		_, _ = r.Blocks(ctx, in.Ino)
		_, _ = r.Lookup(ctx, in.Ino, "x")
		return nil
	})
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	_ = Unpack(ctx, fl, out, UnpackOptions{Store: store.NewDir(filepath.Join(dir, "store")), Parallel: 2})
	onlyIn(t, dir, "out", "store")
}

// onlyIn fails the test when dir holds anything but the names allowed: an
// unpack into dir/out wrote outside its target.
func onlyIn(t *testing.T, dir string, allowed ...string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !slices.Contains(allowed, e.Name()) {
			t.Fatalf("unpack wrote %s outside its target", e.Name())
		}
	}
}

// FuzzReader feeds corrupted flist files to the reader. The seeds are a
// real rfs flist and a small one with 512-byte pages, which the fuzzer can
// mutate (and minimize) far faster:
//
//	go test -run XXX -fuzz FuzzReader -fuzzminimizetime 5s -fuzztime 2m ./pkg/flist
func FuzzReader(f *testing.F) {
	rfsMade, err := os.ReadFile(filepath.Join("testdata", "hello-world-latest.fl"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rfsMade)
	small := smallFlist(f)
	f.Add(small)
	for _, off := range []int{100, 512 + 8, 2*512 + 20, len(small) - 100} {
		b := append([]byte{}, small...)
		b[off] ^= 0xff
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fl := filepath.Join(t.TempDir(), "fuzz.fl")
		if err := os.WriteFile(fl, data, 0o644); err != nil {
			t.Fatal(err)
		}
		exercise(t, fl)
	})
}

// smallFlist is a complete flist with 512-byte pages: a root, a file with a
// block, a symlink, a subdirectory and a route.
func smallFlist(f *testing.F) []byte {
	fl := filepath.Join(f.TempDir(), "small.fl")
	db, err := sql.Open("sqlite", fl)
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	b, _, err := EncodeBlock([]byte("hello\n"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct {
		q    string
		args []any
	}{
		{"pragma page_size = 512", nil},
		{schema, nil},
		{"insert into inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) values (0, '/', 4096, 0, 0, 16877, 0, 1, 2)", nil},
		{"insert into inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) values (1, 'hello', 6, 1000, 1001, 33188, 0, 1, 2)", nil},
		{"insert into inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) values (1, 'mtab', 12, 0, 0, 41471, 0, 1, 2)", nil},
		{"insert into inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) values (1, 'etc', 4096, 0, 0, 16877, 0, 1, 2)", nil},
		{"insert into extra (ino, data) values (3, ?)", []any{[]byte("/proc/mounts")}},
		{"insert into block (ino, id, key) values (2, ?, ?)", []any{b.ID[:], b.Key[:]}},
		{"insert into route (start, end, url) values (0, 255, 'dir:///tmp/store0')", nil},
	} {
		if _, err := db.Exec(s.q, s.args...); err != nil {
			f.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(fl)
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// FuzzRows writes rows rfs could never write (wrong storage classes, ids of
// any length, unsafe names, self-parented directories, a root that is not a
// directory) into a well-formed database and reads it back.
func FuzzRows(f *testing.F) {
	f.Add("etc", int64(1), int64(0o40755), int64(4096), uint8(32), uint8(32), []byte("/proc/mounts"), false, int64(1))
	f.Add("..", int64(1), int64(0o100644), int64(3), uint8(32), uint8(31), []byte{}, false, int64(0o40755))
	f.Add("a/b", int64(2), int64(0o120777), int64(-1), uint8(64), uint8(32), []byte(nil), true, int64(0o100644))
	f.Add("x", int64(2), int64(0o40755), int64(1<<40), uint8(0), uint8(0), []byte("t"), false, int64(0o40755))
	f.Fuzz(func(t *testing.T, name string, parent, mode, size int64, idLen, keyLen uint8, data []byte, nameBlob bool, rootMode int64) {
		fl := filepath.Join(t.TempDir(), "rows.fl")
		db, err := sql.Open("sqlite", fl)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var nameArg any = name
		if nameBlob {
			nameArg = []byte(name)
		}
		stmts := []struct {
			q    string
			args []any
		}{
			{schema, nil},
			{"insert into inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) values (0, '/', 4096, 0, 0, ?, 0, 0, 0)", []any{rootMode}},
			{"insert into inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) values (?, ?, ?, 1, 2, ?, 0, 0, 0)", []any{parent, nameArg, size, mode}},
			{"insert into inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) values (2, 'child', 1, 'uid', 2.5, ?, 0, 0, 0)", []any{mode}},
			{"insert into extra (ino, data) values (2, ?)", []any{data}},
			{"insert into block (ino, id, key) values (2, ?, ?)", []any{make([]byte, idLen), make([]byte, keyLen)}},
			{"insert into route (start, end, url) values (0, 255, 'dir:///nonexistent')", nil},
		}
		for _, s := range stmts {
			if _, err := db.Exec(s.q, s.args...); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		exercise(t, fl)
	})
}

// walkNames are the names FuzzWalk draws from: repeats (duplicate paths),
// names that could escape, and names a terminal would act on.
var walkNames = []string{"a", "b", "a", "dir", "..", ".", "", "x/y", "n\x00", "\x1b[2J", "b"}

// walkTargets are the symlink targets FuzzWalk draws from.
var walkTargets = []string{"a", "/etc/passwd", "../../outside", "dir/a"}

// FuzzWalk builds an inode table from the input, three bytes an inode
// (parent, kind, name), so that parents, cycles, duplicate names and
// unsafe names come up far more often than in mutated files, and checks
// the walk against the unpack: a walk that succeeds visits every path once,
// parents first, and unpack then creates exactly those paths and nothing
// outside its target; a walk that fails makes unpack fail as corrupt. Run
// longer with
//
//	go test -run '^$' -fuzz '^FuzzWalk$' -fuzztime 5m ./pkg/flist
func FuzzWalk(f *testing.F) {
	f.Add([]byte{1, 0, 3, 2, 1, 0, 2, 2, 1})          // /dir/a, /dir/b -> a
	f.Add([]byte{1, 0, 0, 1, 0, 2})                   // /a twice: a directory and another
	f.Add([]byte{1, 1, 0, 1, 2, 2})                   // /a file and /a symlink
	f.Add([]byte{3, 0, 0, 2, 0, 1})                   // a cycle: 2 in 3, 3 in 2
	f.Add([]byte{1, 0, 4, 1, 1, 7, 1, 3, 9})          // "..", "x/y", an escape
	f.Add([]byte{1, 0, 3, 2, 0, 3, 3, 0, 3, 4, 1, 0}) // /dir/dir/dir/a
	f.Add([]byte{2, 0, 0, 1, 0, 1, 1, 3, 0, 0, 0, 0}) // parent 0, self-parent
	f.Fuzz(func(t *testing.T, data []byte) {
		inodes := []Inode{dirInode(0, "/")}
		for i := 0; i+2 < len(data) && len(inodes) < 40; i += 3 {
			parent := int64(data[i]) % int64(len(inodes)+2)
			name := walkNames[int(data[i+2])%len(walkNames)]
			switch data[i+1] % 4 {
			case 0:
				inodes = append(inodes, dirInode(parent, name))
			case 1:
				inodes = append(inodes, fileInode(parent, name, 0, 0o644))
			case 2:
				inodes = append(inodes, symlinkInode(parent, name, walkTargets[int(data[i+2])%len(walkTargets)]))
			default:
				inodes = append(inodes, Inode{Parent: parent, Name: name, Mode: uint32(TypeFIFO) | 0o600})
			}
		}
		base := t.TempDir()
		fl := crafted{inodes: inodes}.write(t, filepath.Join(base, "walk.fl"), nil)
		r, err := Open(fl)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		seen := map[string]bool{}
		walkErr := r.Walk(ctx, func(p string, in *Inode) error {
			if seen[p] {
				t.Fatalf("%q visited twice", p)
			}
			if p != "/" && !seen[path.Dir(p)] {
				t.Fatalf("%q visited before its parent", p)
			}
			if p != "/" && (path.Clean(p) != p || !strings.HasPrefix(p, "/")) {
				t.Fatalf("unclean path %q", p)
			}
			seen[p] = true
			return nil
		})
		if walkErr != nil && !errors.Is(walkErr, ErrCorrupt) {
			t.Fatalf("walk error is not ErrCorrupt: %v", walkErr)
		}
		_ = r.Tree(ctx, io.Discard)
		out := filepath.Join(base, "out")
		err = Unpack(ctx, fl, out, UnpackOptions{Store: store.NewDir(filepath.Join(base, "store")), Parallel: 2})
		onlyIn(t, base, "out", "walk.fl")
		if walkErr != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("walk failed (%v) but unpack returned %v", walkErr, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("walk succeeded but unpack failed: %v", err)
		}
		for p := range seen {
			if _, err := os.Lstat(filepath.Join(out, filepath.FromSlash(p))); err != nil {
				t.Fatalf("walked %q, unpack did not create it: %v", p, err)
			}
		}
	})
}
