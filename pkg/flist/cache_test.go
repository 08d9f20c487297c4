package flist

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestCacheBound: the cache keeps the most recently used blocks within its
// limit, starts from what a previous run left (oldest evicted first), and
// removes leftovers of interrupted writes.
func TestCacheBound(t *testing.T) {
	dir := t.TempDir()
	f := fetcher{cache: dir}
	ids := make([][HashSize]byte, 6)
	for i := range ids {
		ids[i][0], ids[i][1] = byte(i), 0xaa
	}
	put := func(i int, size int) {
		t.Helper()
		if err := f.save(ids[i], bytes.Repeat([]byte{byte(i)}, size)); err != nil {
			t.Fatal(err)
		}
		f.bound.touch(ids[i], size)
	}
	present := func() (out []int) {
		for i, id := range ids {
			if _, err := os.Stat(blockCachePath(dir, id)); err == nil {
				out = append(out, i)
			} else if !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
		}
		return out
	}

	// A previous run left blocks 0, 1, 2 (0 the oldest) and a temp file.
	for i := range 3 {
		put(i, 100)
		old := time.Now().Add(time.Duration(i-10) * time.Minute)
		if err := os.Chtimes(blockCachePath(dir, ids[i]), old, old); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(filepath.Dir(blockCachePath(dir, ids[0])), ".tmp-123")
	if err := os.WriteFile(tmp, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.bound, err = newCacheBound(dir, 250, nil); err != nil {
		t.Fatal(err)
	}
	if got := present(); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("after start with limit 250: blocks %v, want [1 2] (the oldest evicted)", got)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover temp file kept: %v", err)
	}

	f.bound.touch(ids[1], 100) // 1 used: 2 is now the least recent
	put(3, 100)
	if got := present(); !slices.Equal(got, []int{1, 3}) {
		t.Errorf("after adding 3: blocks %v, want [1 3]", got)
	}
	put(4, 250) // fills the cache alone
	if got := present(); !slices.Equal(got, []int{4}) {
		t.Errorf("after adding a 250-byte block: %v, want [4]", got)
	}
	put(5, 300) // larger than the limit: not kept
	if got := present(); len(got) != 0 {
		t.Errorf("after adding a block over the limit: %v, want none", got)
	}
	if n := f.bound.bytes(); n != 0 {
		t.Errorf("cache accounts %d bytes, want 0", n)
	}

	if _, err := newCacheBound(dir, 0, nil); err == nil {
		t.Error("a zero limit was accepted")
	}
	if b, err := newCacheBound(filepath.Join(dir, "missing"), 10, nil); err != nil || b.bytes() != 0 {
		t.Errorf("cache in a folder that does not exist yet: %v", err)
	}
}
