package flist

import (
	"database/sql"
	"io"
	"os"
	"path/filepath"
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
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "out" && e.Name() != "store" {
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
