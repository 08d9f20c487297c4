package bench

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/s3test"
	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// TestRunSmall runs the whole benchmark on a 48 MB tree (the timings are not
// checked, only that every part ran and the second packs uploaded nothing).
func TestRfsSmall(t *testing.T) {
	testutil.Slow(t)
	mods, _ := filepath.Glob("/lib/modules/*/kernel/drivers/net/ethernet/intel")
	if len(mods) == 0 {
		testutil.Missing(t, "no /lib/modules/*/kernel/drivers/net/ethernet/intel (apt-get install linux-image-amd64)")
	}
	if s3test.Bin() == "" {
		testutil.Missing(t, "versitygw not installed")
	}
	rep, err := Rfs(context.Background(), RfsOptions{WorkDir: t.TempDir(), ModulesDir: mods[0], TreeBytes: 48 << 20, Runs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Steps) != 4 || rep.CodecMBps <= 0 || rep.CeilingMBps < rep.CodecMBps || len(rep.Runs) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	for _, run := range rep.Runs {
		if run.First.Uploaded == 0 || run.Second.Uploaded != 0 || run.Second.Skipped != run.First.Uploaded {
			t.Errorf("%s: first %s; second %s", run.Store, run.First, run.Second)
		}
		if run.Runs != 2 || run.MinPercent > run.CeilingPercent || run.CeilingPercent > run.MaxPercent || run.CeilingMBps <= 0 {
			t.Errorf("%s: %d runs, %.0f%% of the ceiling (%.0f MB/s), range %.0f-%.0f%%", run.Store, run.Runs, run.CeilingPercent, run.CeilingMBps, run.MinPercent, run.MaxPercent)
		}
		if run.SecondUploads != 0 || run.SecondMin > run.SecondPercent || run.SecondPercent > run.SecondMax || run.SecondMax <= 0 {
			t.Errorf("%s: second / first %.1f%%, range %.1f-%.1f%%, %d blobs uploaded", run.Store, run.SecondPercent, run.SecondMin, run.SecondMax, run.SecondUploads)
		}
		if run.PeakRSS <= 0 {
			t.Errorf("%s: no peak RSS measured", run.Store)
		}
	}
	if rep.TreeBytes < 48<<20 {
		t.Errorf("tree of %d bytes", rep.TreeBytes)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| dir (", "| S3 (versitygw, loopback) |", "snappy", "Goals (ratios):", "peak RSS <= 200 MB", "measured 2 times"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
	t.Log("\n" + buf.String())
}
