package flist

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// TestMount mounts a packed tree with FUSE and reads it back through the
// kernel: every file, link, mode, owner and mtime matches the source.
func TestMount(t *testing.T) {
	testutil.Slow(t)
	testutil.RequireTool(t, "fusermount3")
	testutil.RequireFile(t, "/dev/fuse")
	src := t.TempDir()
	makeTree(t, src)
	work := t.TempDir()
	fl := filepath.Join(work, "m.fl")
	if _, err := Pack(ctx, src, fl, PackOptions{Store: store.NewDir(filepath.Join(work, "store"))}); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(work, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := Mount(context.Background(), fl, mnt, MountOptions{CacheDir: filepath.Join(work, "cache"), Routes: localRoutes})
	if err != nil {
		t.Fatal(err)
	}
	unmounted := false
	t.Cleanup(func() {
		if !unmounted {
			_ = m.Unmount()
		}
	})
	compareTrees(t, src, mnt)
	// Reads at odd offsets across a block boundary.
	want, _ := os.ReadFile(filepath.Join(src, "big/random-3m.bin"))
	f, err := os.Open(filepath.Join(mnt, "big/random-3m.bin"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	for _, off := range []int64{0, BlockSize - 500, 2*BlockSize + 7, int64(len(want)) - 300} {
		n, _ := f.ReadAt(buf, off)
		if string(buf[:n]) != string(want[off:min(off+1000, int64(len(want)))]) {
			t.Errorf("ReadAt(%d) differs", off)
		}
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(mnt, "hello.txt"), []byte("x"), 0o644); err == nil {
		t.Error("write to the read-only mount succeeded")
	}
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	unmounted = true
	if entries, _ := os.ReadDir(mnt); len(entries) != 0 {
		t.Errorf("mountpoint not empty after unmount: %d entries", len(entries))
	}
}
