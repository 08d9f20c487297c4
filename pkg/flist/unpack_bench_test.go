package flist

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// BenchmarkUnpackModules unpacks Debian's kernel module tree (about 4,000
// files in 300 directories, many small) from a dir store: the cost of
// verifying every block and of creating every entry through directory
// descriptors shows here, per entry rather than per byte.
func BenchmarkUnpackModules(b *testing.B) {
	mods, _ := filepath.Glob("/lib/modules/*/kernel")
	if len(mods) == 0 {
		testutil.Missing(b, "no /lib/modules/*/kernel (apt package linux-image-amd64)")
	}
	work := b.TempDir()
	st := store.NewDir(filepath.Join(work, "store"))
	fl := filepath.Join(work, "modules.fl")
	stats, err := Pack(ctx, mods[0], fl, PackOptions{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(stats.Bytes))
	for b.Loop() {
		out := filepath.Join(work, "out")
		if err := Unpack(ctx, fl, out, UnpackOptions{Store: st}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
	}
}
