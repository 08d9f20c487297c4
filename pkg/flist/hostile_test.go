package flist

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/golang/snappy"
	"github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/crypto/blake2b"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// craftedFile is one regular file of a crafted flist: its content goes to
// the store block by block, unless blocks overrides the block rows.
type craftedFile struct {
	data   []byte
	blocks []Block
}

// crafted is an flist built row by row, as an attacker would: inodes in
// order (the first is the root), optional file contents, routes.
type crafted struct {
	inodes []Inode
	files  map[int]craftedFile // by index in inodes
	routes []store.Route
}

// write creates the flist at fl, putting the blobs of the files' contents
// into st (when not nil), and returns fl.
func (c crafted) write(t testing.TB, fl string, st store.Store) string {
	t.Helper()
	w, err := Create(fl)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, in := range c.inodes {
		ino, err := w.AddInode(in)
		if err != nil {
			t.Fatal(err)
		}
		f, ok := c.files[i]
		if !ok {
			continue
		}
		blocks := f.blocks
		if blocks == nil {
			for off := 0; off < len(f.data); off += BlockSize {
				b, blob, err := EncodeBlock(f.data[off:min(off+BlockSize, len(f.data))])
				if err != nil {
					t.Fatal(err)
				}
				if st != nil {
					if err := st.Set(ctx, b.ID[:], blob); err != nil {
						t.Fatal(err)
					}
				}
				blocks = append(blocks, b)
			}
		}
		if err := w.AddBlocks(ino, blocks); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range c.routes {
		if err := w.AddRoute(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return fl
}

func dirInode(parent int64, name string) Inode {
	return Inode{Parent: parent, Name: name, Size: 4096, Mode: uint32(TypeDir) | 0o755}
}

func fileInode(parent int64, name string, size int, mode uint32) Inode {
	return Inode{Parent: parent, Name: name, Size: uint64(size), Mode: uint32(TypeRegular) | mode}
}

func symlinkInode(parent int64, name, target string) Inode {
	return Inode{Parent: parent, Name: name, Size: uint64(len(target)), Mode: uint32(TypeSymlink) | 0o777, Data: []byte(target)}
}

// TestWalkRejectsDuplicates: two entries with one path (two directories, or
// a file and a symlink) make an flist corrupt; the walk says which path.
func TestWalkRejectsDuplicates(t *testing.T) {
	tests := []struct {
		name   string
		inodes []Inode
		path   string
	}{
		{"two directories", []Inode{dirInode(0, "/"), dirInode(1, "d"), dirInode(1, "d")}, "/d"},
		{"file and symlink", []Inode{dirInode(0, "/"), dirInode(1, "d"), fileInode(2, "x", 0, 0o644), symlinkInode(2, "x", "/etc/passwd")}, "/d/x"},
		{"directory and file", []Inode{dirInode(0, "/"), fileInode(1, "x", 0, 0o644), dirInode(1, "x")}, "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := crafted{inodes: tt.inodes}.write(t, filepath.Join(t.TempDir(), "dup.fl"), nil)
			r, err := Open(fl)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			err = r.Walk(ctx, func(string, *Inode) error { return nil })
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"`+tt.path+`"`) {
				t.Errorf("Walk = %v, want ErrCorrupt naming %q", err, tt.path)
			}
		})
	}
}

// TestUnpackDuplicatePathAttack is the attack of issue 12 item 1: the walk
// meets /d twice; the first /d/x is a setuid file a worker is writing, the
// second a symlink to a file outside the target. A path-based chmod after
// the worker closed the file made the outside file setuid. Unpack must fail
// as corrupt and leave the outside file alone, every time.
func TestUnpackDuplicatePathAttack(t *testing.T) {
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := store.NewDir(filepath.Join(base, "store"))
	data := make([]byte, 4*BlockSize)
	// Inode 3 (the second /d) is popped first: the file job goes to a
	// worker, then the walk turns /d/x into a symlink in inode 2.
	fl := crafted{
		inodes: []Inode{dirInode(0, "/"), dirInode(1, "d"), dirInode(1, "d"), symlinkInode(2, "x", victim), fileInode(3, "x", len(data), 0o4777)},
		files:  map[int]craftedFile{4: {data: data}},
	}.write(t, filepath.Join(base, "attack.fl"), st)
	for i := range 20 {
		out := filepath.Join(base, "out", string(rune('a'+i)))
		err := Unpack(ctx, fl, out, UnpackOptions{Store: st})
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("run %d: Unpack = %v, want ErrCorrupt", i, err)
		}
		fi, err := os.Stat(victim)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o644 {
			t.Fatalf("run %d: the file outside the target now has mode %v", i, fi.Mode())
		}
	}
}

// countingStore counts the blobs read from a store.
type countingStore struct {
	store.Store
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, id []byte) ([]byte, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, id)
}

// TestUnpackStopsAtSize is item 3: block rows beyond what the inode's size
// allows, or a block longer than the size, fail before the extra content is
// fetched or written, and the partial file is removed.
func TestUnpackStopsAtSize(t *testing.T) {
	base := t.TempDir()
	dir := store.NewDir(filepath.Join(base, "store"))
	big := make([]byte, BlockSize)
	b, blob, err := EncodeBlock(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Set(ctx, b.ID[:], blob); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		size     int
		blocks   int
		maxFetch int64
	}{
		{"200 rows on a 3-byte file", 3, 200, 0},
		{"one block longer than the file", 3, 1, 1},
		{"one row short", 2 * BlockSize, 1, 1},
		{"a row too many after full blocks", BlockSize, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := make([]Block, tt.blocks)
			for i := range rows {
				rows[i] = b
			}
			fl := crafted{
				inodes: []Inode{dirInode(0, "/"), fileInode(1, "f", tt.size, 0o644)},
				files:  map[int]craftedFile{1: {blocks: rows}},
			}.write(t, filepath.Join(t.TempDir(), "rows.fl"), nil)
			st := &countingStore{Store: dir}
			out := filepath.Join(t.TempDir(), "out")
			err := Unpack(ctx, fl, out, UnpackOptions{Store: st})
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Unpack = %v, want ErrCorrupt", err)
			}
			if n := st.gets.Load(); n > tt.maxFetch {
				t.Errorf("%d blocks fetched, want at most %d", n, tt.maxFetch)
			}
			if _, err := os.Lstat(filepath.Join(out, "f")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("partial file left behind: %v", err)
			}
		})
	}
}

// sealBlob encrypts plain with key the way the codec does, without deriving
// the key from plain: what a forger with a chosen key can make.
func sealBlob(t testing.TB, key [HashSize]byte, plain []byte) []byte {
	t.Helper()
	gcm, err := newGCM(key[:])
	if err != nil {
		t.Fatal(err)
	}
	return gcm.Seal(nil, key[:gcm.NonceSize()], snappy.Encode(nil, plain), nil)
}

// TestForgedBlocks is item 2: a blob that does not hash to its id, or whose
// content does not hash to its key, is never returned by any reader; a bad
// cache entry is dropped and fetched again.
func TestForgedBlocks(t *testing.T) {
	good := []byte("the real content\n")
	evil := []byte("forged content!!\n")
	b, blob, err := EncodeBlock(good)
	if err != nil {
		t.Fatal(err)
	}
	evilRow, evilBlob, err := EncodeBlock(evil)
	if err != nil {
		t.Fatal(err)
	}
	// Content sealed with the real key: decrypts, but hashes to another key.
	wrongKeyBlob := sealBlob(t, b.Key, evil)
	wrongKeyRow := Block{ID: blake2b.Sum256(wrongKeyBlob), Key: b.Key}

	tests := []struct {
		name string
		row  Block
		blob []byte // stored under row.ID
	}{
		{"blob does not hash to its id", Block{ID: b.ID, Key: evilRow.Key}, evilBlob},
		{"content does not hash to its key", wrongKeyRow, wrongKeyBlob},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			st := store.NewDir(filepath.Join(base, "store"))
			if err := st.Set(ctx, tt.row.ID[:], tt.blob); err != nil {
				t.Fatal(err)
			}
			fl := crafted{
				inodes: []Inode{dirInode(0, "/"), fileInode(1, "f", len(evil), 0o644)},
				files:  map[int]craftedFile{1: {blocks: []Block{tt.row}}},
			}.write(t, filepath.Join(base, "forged.fl"), nil)
			out := filepath.Join(base, "out")
			err := Unpack(ctx, fl, out, UnpackOptions{Store: st})
			if !errors.Is(err, ErrCorruptBlock) {
				t.Errorf("Unpack = %v, want ErrCorruptBlock", err)
			}
			if got, err := os.ReadFile(filepath.Join(out, "f")); err == nil {
				t.Errorf("unpacked the forged content %q", got)
			}
			f := fetcher{store: st}
			if plain, err := f.block(ctx, tt.row); !errors.Is(err, ErrCorruptBlock) {
				t.Errorf("fetch (mount's read path) = %q, %v; want ErrCorruptBlock", plain, err)
			}
		})
	}

	t.Run("bad cache entry", func(t *testing.T) {
		base := t.TempDir()
		st := store.NewDir(filepath.Join(base, "store"))
		if err := st.Set(ctx, b.ID[:], blob); err != nil {
			t.Fatal(err)
		}
		cache := filepath.Join(base, "cache")
		f := fetcher{store: st, cache: cache}
		if err := os.MkdirAll(filepath.Dir(f.cachePath(b.ID)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.cachePath(b.ID), evil, 0o644); err != nil {
			t.Fatal(err)
		}
		fl := crafted{
			inodes: []Inode{dirInode(0, "/"), fileInode(1, "f", len(good), 0o644)},
			files:  map[int]craftedFile{1: {blocks: []Block{b}}},
		}.write(t, filepath.Join(base, "cached.fl"), nil)
		out := filepath.Join(base, "out")
		if err := Unpack(ctx, fl, out, UnpackOptions{Store: st, CacheDir: cache}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(out, "f")); string(got) != string(good) {
			t.Errorf("unpacked %q from a bad cache entry, want %q", got, good)
		}
		if got, _ := os.ReadFile(f.cachePath(b.ID)); string(got) != string(good) {
			t.Errorf("cache entry is still %q", got)
		}
	})
}

// TestVerifyShallowSaysWhatItSkipped: a verify without Deep says that it
// did not fetch or check the content.
func TestVerifyShallowSaysWhatItSkipped(t *testing.T) {
	rep := VerifyReport{Files: 1, Blocks: 1, Blobs: 1}
	if s := rep.String(); !strings.Contains(s, "not fetched") || !strings.Contains(s, "DEEP") {
		t.Errorf("shallow report %q does not say that content was not checked", s)
	}
	rep.Deep = true
	if s := rep.String(); strings.Contains(s, "not fetched") {
		t.Errorf("deep report %q", s)
	}
}

// TestMaxBlobSize: the stores' read limit is the codec's worst case, so no
// real blob is refused and nothing longer is read.
func TestMaxBlobSize(t *testing.T) {
	if want := snappy.MaxEncodedLen(BlockSize) + 16; store.MaxBlobSize != want {
		t.Errorf("store.MaxBlobSize = %d, the codec's worst case is %d", store.MaxBlobSize, want)
	}
	random := make([]byte, BlockSize)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	if _, blob, err := EncodeBlock(random); err != nil || len(blob) > store.MaxBlobSize {
		t.Errorf("incompressible block: %d-byte blob, %v", len(blob), err)
	}
}

// TestPrintQuotesNonPrintable is item 5: names and link targets with
// control characters or bytes that are not UTF-8 are printed Go-quoted, so
// tree and inspect cannot drive the terminal; printable names (spaces and
// non-ASCII letters included) stay as rfs prints them.
func TestPrintQuotesNonPrintable(t *testing.T) {
	fl := crafted{inodes: []Inode{
		dirInode(0, "/"),
		fileInode(1, "\x1b[2Jcleared", 0, 0o644),
		fileInode(1, "bad\xffutf8", 0, 0o644),
		fileInode(1, "new\nline", 0, 0o644),
		fileInode(1, "plain name é", 0, 0o644),
		symlinkInode(1, "link", "\x1b]0;title\x07"),
		dirInode(1, "dir\x1b"),
	}}.write(t, filepath.Join(t.TempDir(), "escapes.fl"), nil)

	var tree, inspect bytes.Buffer
	if err := Tree(&tree, fl); err != nil {
		t.Fatal(err)
	}
	if err := Inspect(&inspect, fl); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"tree": tree.String(), "inspect": inspect.String()} {
		for _, c := range out {
			if c != '\n' && !strconv.IsPrint(c) {
				t.Errorf("%s prints the raw character %q:\n%s", name, c, out)
				break
			}
		}
		for _, want := range []string{`"\x1b[2Jcleared"`, `"bad\xffutf8"`, `"new\nline"`, "plain name é\n", `"dir\x1b"`} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %s:\n%s", name, want, out)
			}
		}
	}
	for _, want := range []string{`Path: "/dir\x1b"`, `Name: "\x1b[2Jcleared"`, `Link Target: "\x1b]0;title\a"`, "Path: /plain name é\n"} {
		if !strings.Contains(inspect.String(), want) {
			t.Errorf("inspect lacks %s", want)
		}
	}
}

// TestRoutePolicy is item 6: the routes of an flist cannot send the reader
// to a link-local address, nor, unless allowed, to loopback or a local
// directory; the routes used are logged in one line.
func TestRoutePolicy(t *testing.T) {
	base := t.TempDir()
	storeDir := filepath.Join(base, "store")
	data := []byte("content\n")
	write := func(name string, routes ...string) string {
		c := crafted{
			inodes: []Inode{dirInode(0, "/"), fileInode(1, "f", len(data), 0o644)},
			files:  map[int]craftedFile{1: {data: data}},
		}
		for _, r := range routes {
			c.routes = append(c.routes, store.Route{Start: 0, End: 255, URL: r})
		}
		return c.write(t, filepath.Join(base, name), store.NewDir(storeDir))
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(storeDir)))
	defer srv.Close()
	tests := []struct {
		name    string
		fl      string
		allow   store.RoutePolicy
		refused bool
	}{
		{"link-local metadata address", write("meta.fl", "http://169.254.169.254/latest"), store.RoutePolicy{AllowLoopback: true, AllowDirs: []string{"/"}}, true},
		{"link-local after a good route", write("meta2.fl", "dir://"+storeDir, "http://[fe80::a9fe:a9fe]:80/"), store.RoutePolicy{AllowDirs: []string{storeDir}}, true},
		{"dir route by default", write("dir.fl", "dir://"+storeDir), store.RoutePolicy{}, true},
		{"dir route outside the allowed list", write("dir2.fl", "dir://"+storeDir), store.RoutePolicy{AllowDirs: []string{filepath.Join(base, "elsewhere")}}, true},
		{"dir route allowed", write("dir3.fl", "dir://"+storeDir), store.RoutePolicy{AllowDirs: []string{base}}, false},
		{"loopback by default", write("lo.fl", srv.URL), store.RoutePolicy{}, true},
		{"loopback allowed", write("lo2.fl", srv.URL), store.RoutePolicy{AllowLoopback: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, hook := test.NewNullLogger()
			out := filepath.Join(t.TempDir(), "out")
			err := Unpack(ctx, tt.fl, out, UnpackOptions{Routes: tt.allow, Log: log})
			if refused := errors.Is(err, store.ErrRouteRefused); refused != tt.refused {
				t.Fatalf("Unpack = %v; refused %v, want %v", err, refused, tt.refused)
			}
			_, verr := Verify(ctx, tt.fl, VerifyOptions{Routes: tt.allow, Deep: true})
			if refused := errors.Is(verr, store.ErrRouteRefused); refused != tt.refused {
				t.Errorf("Verify = %v; refused %v, want %v", verr, refused, tt.refused)
			}
			if tt.refused {
				return
			}
			if got, _ := os.ReadFile(filepath.Join(out, "f")); string(got) != string(data) {
				t.Errorf("f = %q", got)
			}
			var lines []string
			for _, e := range hook.AllEntries() {
				if strings.Contains(e.Message, "blobs from") {
					lines = append(lines, e.Message)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "00-ff=") {
				t.Errorf("route log lines: %q", lines)
			}
		})
	}
}
