package flist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/procs"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// slowStore is a dir store whose writes take a while and which records the
// order of Sets and Syncs, and whether the flist existed at the Sync.
type slowStore struct {
	*store.Dir
	delay time.Duration
	fl    string

	mu          sync.Mutex
	sets        int
	syncs       []int  // sets done at each Sync
	flistAtSync []bool // whether the output flist existed then
}

func (s *slowStore) Set(ctx context.Context, id, blob []byte) error {
	time.Sleep(s.delay)
	err := s.Dir.Set(ctx, id, blob)
	s.mu.Lock()
	s.sets++
	s.mu.Unlock()
	return err
}

func (s *slowStore) Sync(ctx context.Context) error {
	s.mu.Lock()
	s.syncs = append(s.syncs, s.sets)
	_, err := os.Stat(s.fl)
	s.flistAtSync = append(s.flistAtSync, err == nil)
	s.mu.Unlock()
	return s.Dir.Sync(ctx)
}

// randomTree writes files of the given sizes (seeded random bytes) under
// root/name-<i>.
func randomTree(t testing.TB, root, name string, sizes ...int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, uint64(len(sizes))))
	for i, n := range sizes {
		b := make([]byte, n)
		for j := range b {
			if j%8 == 0 {
				v := rng.Uint64()
				for k := j; k < min(j+8, n); k++ {
					b[k], v = byte(v), v>>8
				}
			}
		}
		p := filepath.Join(root, fmt.Sprintf("%s-%03d", name, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPackBoundedBuffers: however large the tree, a pack holds at most
// maxChunks chunk buffers at once, even when the store is much slower than
// reading (the reader must wait, not queue the tree in memory); and the
// store is synced once, after the last blob and before the flist exists.
func TestPackBoundedBuffers(t *testing.T) {
	src := t.TempDir()
	// 75 blocks: one large file, some that end mid-block, empty ones.
	randomTree(t, src, "big/f", 64*BlockSize)
	randomTree(t, src, "mixed/g", 3*BlockSize+1, 0, BlockSize-1, 5*BlockSize, 0, 7)
	randomTree(t, src, "small/h", make([]int, 40)...)
	for _, parallel := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(parallel), func(t *testing.T) {
			fl := filepath.Join(t.TempDir(), "out.fl")
			st := &slowStore{Dir: store.NewDir(t.TempDir()), delay: 2 * time.Millisecond, fl: fl}
			p := newPacker(PackOptions{Store: st, Parallel: parallel})
			stats, err := p.packTo(ctx, src, fl)
			if err != nil {
				t.Fatal(err)
			}
			if stats.Blocks < 70 || stats.Uploaded < 70 {
				t.Fatalf("too few blocks to test the bound: %s", stats)
			}
			if peak := p.chunks.peak.Load(); peak < 1 || peak > int64(maxChunks(parallel)) {
				t.Errorf("%d chunk buffers at once, bound %d", peak, maxChunks(parallel))
			}
			if out := p.chunks.out.Load(); out != 0 {
				t.Errorf("%d chunk buffers not returned", out)
			}
			if len(st.syncs) != 1 || st.syncs[0] != stats.Uploaded || st.flistAtSync[0] {
				t.Errorf("syncs after %v sets (flist already there: %v), want one after %d", st.syncs, st.flistAtSync, stats.Uploaded)
			}
		})
	}
}

// TestPackOutputInsideTree: an flist written inside the tree it packs is not
// packed into itself, nor are its temporary file and journal; a file of the
// same name elsewhere in the tree is.
func TestPackOutputInsideTree(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	fl := filepath.Join(src, "out.fl")
	if err := os.WriteFile(filepath.Join(src, "a", "out.fl"), []byte("not the flist"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := store.NewDir(t.TempDir())
	for range 2 { // the second pack also finds the first one's flist there
		if _, err := Pack(ctx, src, fl, PackOptions{Store: st}); err != nil {
			t.Fatal(err)
		}
		r, err := Open(fl)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		err = r.Walk(ctx, func(path string, _ *Inode) error {
			names = append(names, path)
			return nil
		})
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, n := range names {
			got[n] = true
			if strings.HasPrefix(n, "/.out.fl") {
				t.Errorf("temporary file packed: %s", n)
			}
		}
		if got["/out.fl"] || !got["/a/out.fl"] {
			t.Errorf("walk: /out.fl %v (want false), /a/out.fl %v (want true)", got["/out.fl"], got["/a/out.fl"])
		}
	}
}

// TestPackDuplicateChunks: chunks that repeat, within a file or across
// files, are encoded once and stored once, and every file reads back.
func TestPackDuplicateChunks(t *testing.T) {
	src := t.TempDir()
	randomTree(t, src, "x", 3*BlockSize, BlockSize)
	abc, err := os.ReadFile(filepath.Join(src, "x-000"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(filepath.Join(src, "x-001"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"copy":   abc,                                                // the same three blocks
		"prefix": append(append([]byte{}, abc[:BlockSize]...), w...), // the first block, then another file's
		"twice":  append(append([]byte{}, w...), w...),               // one block twice
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fl := filepath.Join(t.TempDir(), "d.fl")
	stats, err := Pack(ctx, src, fl, PackOptions{Store: store.NewDir(t.TempDir()), Parallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Blocks != 11 || stats.Uploaded != 4 || distinctBlobs(t, fl) != 4 {
		t.Errorf("%d blocks, %d blobs uploaded, %d distinct; want 11, 4, 4", stats.Blocks, stats.Uploaded, distinctBlobs(t, fl))
	}
	out := t.TempDir()
	if err := Unpack(ctx, fl, out, UnpackOptions{Routes: localRoutes}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x-000", "x-001", "copy", "prefix", "twice"} {
		want, _ := os.ReadFile(filepath.Join(src, name))
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read back %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
}

// TestPackSymlinkedSource: the source may be given through a symlink (the
// root is followed, as before); the same tree gives the same flist.
func TestPackSymlinkedSource(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	st := store.NewDir(t.TempDir())
	var got [][]byte
	for _, dir := range []string{src, link, link + "/"} {
		fl := filepath.Join(t.TempDir(), "s.fl")
		if _, err := Pack(ctx, dir, fl, PackOptions{Store: st, NoReuse: true}); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		b, err := os.ReadFile(fl)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	if !bytes.Equal(got[0], got[1]) || !bytes.Equal(got[0], got[2]) {
		t.Error("packing through a symlink gave another flist")
	}
}

// onFirstSet runs change before the first blob is stored.
type onFirstSet struct {
	store.Store
	once   sync.Once
	change func() error
	err    error
}

func (s *onFirstSet) Set(ctx context.Context, id, blob []byte) error {
	s.once.Do(func() { s.err = s.change() })
	return s.Store.Set(ctx, id, blob)
}

// TestPackFileChangedDuringPack: a file that shrinks or grows after the
// walk recorded its size fails the pack, naming it, instead of giving an
// inode row whose size its blocks do not match. With one worker, the
// file's later chunks are read only after its first one is stored.
func TestPackFileChangedDuringPack(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(path string) error
		want   string
	}{
		{"shrinks", func(p string) error { return os.Truncate(p, BlockSize) }, "chunk 1 has 0 bytes"},
		{"grows", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = f.Write([]byte("more"))
			return errors.Join(err, f.Close())
		}, "longer than the"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			randomTree(t, src, "f", 3*BlockSize)
			path := filepath.Join(src, "f-000")
			st := &onFirstSet{Store: store.NewDir(t.TempDir()), change: func() error { return tt.change(path) }}
			fl := filepath.Join(t.TempDir(), "out.fl")
			_, err := Pack(ctx, src, fl, PackOptions{Store: st, Parallel: 1})
			if st.err != nil {
				t.Fatal(st.err)
			}
			var ue *UploadError
			if !errors.As(err, &ue) || len(ue.Files) != 1 || ue.Files[0] != path || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Pack = %v, want a failure of %s saying %q", err, path, tt.want)
			}
			if _, err := os.Stat(fl); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("flist written: %v", err)
			}
		})
	}
}

// remote hides that the store it wraps is local (store.Local).
type remote struct{ store.Store }

// local is a store on this machine, on a disk or in memory.
type local struct {
	store.Store
	waits bool
}

func (l local) Local() (bool, bool) { return true, l.waits }

// TestPackWorkers: a local store gets no more workers than CPUs, whatever
// Parallel asks, and they write behind when its writes wait for a disk;
// another store gets Parallel workers that store their own blobs.
func TestPackWorkers(t *testing.T) {
	dir := store.NewDir(t.TempDir())
	disk, memory := local{dir, true}, local{dir, false}
	tests := []struct {
		name        string
		st          store.Store
		parallel    int
		want        int
		writeBehind bool
	}{
		{"disk", disk, 64, procs.CPUs(), true},
		{"disk, fewer asked", disk, 1, 1, true},
		{"disk, default", disk, 0, min(DefaultParallel, procs.CPUs()), true},
		{"memory", memory, 64, procs.CPUs(), false},
		{"remote", remote{dir}, 64, 64, false},
		{"remote, default", remote{dir}, 0, DefaultParallel, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacker(PackOptions{Store: tt.st, Parallel: tt.parallel})
			if p.opt.Parallel != tt.want || p.writeBehind != tt.writeBehind {
				t.Errorf("%d workers, write behind %v; want %d, %v", p.opt.Parallel, p.writeBehind, tt.want, tt.writeBehind)
			}
		})
	}
}

// TestPackWriteBehind packs the same tree with workers that store their
// own blobs and with workers that write behind: the same flist and blobs.
func TestPackWriteBehind(t *testing.T) {
	src := t.TempDir()
	randomTree(t, src, "big/f", 9*BlockSize+3)
	randomTree(t, src, "small/g", 1, 0, BlockSize, 2*BlockSize-1)
	var flists [][]byte
	var blobs []int
	for _, waits := range []bool{false, true} {
		root := t.TempDir()
		fl := filepath.Join(t.TempDir(), "out.fl")
		zero := int64(0)
		st, err := Pack(ctx, src, fl, PackOptions{Store: local{store.NewDir(root), waits}, Parallel: 2, Time: &zero,
			RouteOverride: []store.Route{{Start: 0, End: 255, URL: "dir:///store"}}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(fl)
		if err != nil {
			t.Fatal(err)
		}
		flists = append(flists, b)
		blobs = append(blobs, st.Uploaded)
		if rep, err := Verify(ctx, fl, VerifyOptions{Store: store.NewDir(root), Deep: true}); err != nil || !rep.OK() {
			t.Errorf("write behind %v: %v, %v", waits, rep, err)
		}
	}
	if !bytes.Equal(flists[0], flists[1]) || blobs[0] != blobs[1] || blobs[0] < 12 {
		t.Errorf("the flists differ (%v) or the blobs uploaded do: %v", !bytes.Equal(flists[0], flists[1]), blobs)
	}
}
