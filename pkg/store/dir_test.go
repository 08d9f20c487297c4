package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// buffer returns n bytes of varied content starting at a page boundary, or
// one byte past it.
func buffer(n int, aligned bool) []byte {
	b := make([]byte, n+2*directAlign)
	off := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%uintptr(directAlign))) % directAlign
	if !aligned {
		off++
	}
	b = b[off : off+n]
	for i := range b {
		b[i] = byte(i*7 + n)
	}
	return b
}

// TestDirSetSizes writes blobs of the sizes around the O_DIRECT unit, from
// page-aligned and unaligned memory, with O_DIRECT on and refused: each
// reads back byte for byte, with mode 0644 whatever the umask, and no
// temporary file is left.
func TestDirSetSizes(t *testing.T) {
	ctx := context.Background()
	defer unix.Umask(unix.Umask(0o077))
	sizes := []int{minBlob, directAlign - 1, directAlign, directAlign + 1, 3 * directAlign, 512<<10 + 11}
	for _, direct := range []bool{true, false} {
		for _, aligned := range []bool{true, false} {
			t.Run(fmt.Sprintf("direct=%v,aligned=%v", direct, aligned), func(t *testing.T) {
				root := t.TempDir()
				d := NewDir(root)
				d.noDirect.Store(!direct)
				for i, n := range sizes {
					blob := buffer(n, aligned)
					if err := d.Set(ctx, id(byte(i)), blob); err != nil {
						t.Fatal(err)
					}
					got, err := d.Get(ctx, id(byte(i)))
					if err != nil || !bytes.Equal(got, blob) {
						t.Fatalf("%d bytes: read back %d bytes, %v", n, len(got), err)
					}
					name := Hex(id(byte(i)))
					fi, err := os.Stat(filepath.Join(root, name[:2], name))
					if err != nil || fi.Mode().Perm() != 0o644 {
						t.Errorf("%d bytes: %v, %v", n, fi.Mode(), err)
					}
				}
				if err := d.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
					if err == nil && strings.HasPrefix(e.Name(), ".tmp-") {
						t.Errorf("temporary file left: %s", p)
					}
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestDirShardRemoved: a shard directory removed while the store is in use
// is made again by the next Set.
func TestDirShardRemoved(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d := NewDir(root)
	a, b := id(1), id(1)
	b[1] = 2
	if err := d.Set(ctx, a, buffer(100, true)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, Hex(a)[:2])); err != nil {
		t.Fatal(err)
	}
	if err := d.Set(ctx, b, buffer(100, true)); err != nil {
		t.Fatal(err)
	}
	if ok, err := d.Exists(ctx, b); !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
}

// TestDirSync: Sync does nothing before a write (the root need not exist)
// and fails, naming the store, when the root is gone after one.
func TestDirSync(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	d := NewDir(root)
	if err := d.Sync(ctx); err != nil {
		t.Fatalf("Sync of an unwritten store: %v", err)
	}
	if err := d.Set(ctx, id(3), buffer(100, true)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(ctx); err == nil || !strings.Contains(err.Error(), root) {
		t.Fatalf("Sync after the root went = %v", err)
	}
}

// TestSyncThroughWrappers: a router and a retrying wrapper pass Sync on to
// the dir stores below them.
func TestSyncThroughWrappers(t *testing.T) {
	ctx := context.Background()
	a, b := NewDir(t.TempDir()), NewDir(t.TempDir())
	r := &Router{}
	r.Add(0, 0x7f, a)
	r.Add(0x80, 0xff, NewRetry(b, RetryOptions{}))
	for _, first := range []byte{0x01, 0x81} {
		if err := r.Set(ctx, id(first), buffer(100, true)); err != nil {
			t.Fatal(err)
		}
	}
	if !a.dirty.Load() || !b.dirty.Load() {
		t.Fatal("writes not recorded as unsynced")
	}
	if err := Sync(ctx, r); err != nil {
		t.Fatal(err)
	}
	if a.dirty.Load() || b.dirty.Load() {
		t.Errorf("unsynced after Sync: %v, %v", a.dirty.Load(), b.dirty.Load())
	}
}

// TestDirRootSpellings: the blob paths are built by concatenation, so a
// root given with a trailing separator or unclean parts must still put a
// blob at <root>/<hex[0:2]>/<hex>, where the other spellings find it.
func TestDirRootSpellings(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	spellings := []string{root, root + "/", root + "//", root + "/sub/..", root + "/./"}
	for i, spelling := range spellings {
		blobID := id(byte(i))
		if err := NewDir(spelling).Set(ctx, blobID, buffer(100, false)); err != nil {
			t.Fatalf("%s: %v", spelling, err)
		}
		name := Hex(blobID)
		if _, err := os.Stat(filepath.Join(root, name[:2], name)); err != nil {
			t.Errorf("%s: the blob is not at <root>/<hex[0:2]>/<hex>: %v", spelling, err)
		}
		for _, other := range spellings {
			if ok, err := NewDir(other).Exists(ctx, blobID); !ok || err != nil {
				t.Errorf("written through %q, Exists through %q: %v, %v", spelling, other, ok, err)
			}
		}
	}
	if got := NewDir("/").shardedPath("abcd"); got != "/ab/abcd" {
		t.Errorf("the root directory's blob path: %q", got)
	}
}
