package sbom

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// BenchmarkGenerateAtScale takes stock at a real image's scale: the host's
// /usr/bin (about 700 files) as the image and Debian's module tree (4023
// modules, 396 MB) as the modules flist, and reports the sizes of the full
// document and of the copy the image carries.
//
//	go test -run XXX -bench GenerateAtScale -benchtime 3x ./pkg/sbom
func BenchmarkGenerateAtScale(b *testing.B) {
	trees, _ := filepath.Glob("/lib/modules/*/kernel")
	if len(trees) == 0 {
		b.Skip("no /lib/modules/<version>/kernel (Debian's linux-image-amd64)")
	}
	src := filepath.Dir(trees[0])
	fl := filepath.Join(b.TempDir(), "modules.fl")
	if _, err := flist.Pack(context.Background(), src, fl, flist.PackOptions{Store: store.NewDir(filepath.Join(b.TempDir(), "store"))}); err != nil {
		b.Fatal(err)
	}
	opt := Options{Root: "/usr/bin", BuildID: "bench", Created: testEpoch, KernelFullVersion: filepath.Base(src),
		Flists: []FlistSource{{Path: fl, Kind: FlistModules, MountPoint: "lib/modules/" + filepath.Base(src), Source: src}}}
	var inv *Inventory
	b.ResetTimer()
	for b.Loop() {
		var err error
		if inv, err = Generate(context.Background(), opt); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	full, err := Marshal(inv)
	if err != nil {
		b.Fatal(err)
	}
	embedded, err := Embedded(inv)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(inv.Files)), "image-files")
	b.ReportMetric(float64(len(inv.Flists[0].Files)), "flist-files")
	b.ReportMetric(float64(len(full)), "full-bytes")
	b.ReportMetric(float64(len(embedded)), "embedded-bytes")
}
