package stage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// A stage that restores its artifact says so in its "done" line, and
// Status shows the hits and misses of the recorded run.
func TestCacheReport(t *testing.T) {
	dir := t.TempDir()
	e, logs := open(t, t.TempDir(), false)
	mk := func(name string, hits, misses int) Stage {
		return Stage{Name: name, Outputs: []string{filepath.Join(dir, name)}, Run: func(ctx context.Context, _ logrus.FieldLogger) error {
			for range hits {
				ReportCache(ctx, true, "k1 from dir:///cache (1 MB)")
			}
			for range misses {
				ReportCache(ctx, false, "")
			}
			return os.WriteFile(filepath.Join(dir, name), nil, 0o644)
		}}
	}
	stages := []Stage{mk("restored", 1, 0), mk("mixed", 2, 1), mk("built", 0, 1), mk("nocache", 0, 0)}
	for _, s := range stages {
		if err := e.Run(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{
		`done in \S+ \(restored from the artifact cache: k1 from dir:///cache \(1 MB\)\)" stage=restored`,
		`done in \S+ \(artifact cache: 2 hits, 1 miss\)" stage=mixed`,
		`done in \S+ \(artifact cache: miss\)" stage=built`,
	} {
		if !regexp.MustCompile(want).MatchString(logs.String()) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if regexp.MustCompile(`done in \S+ \(.*stage=nocache`).MatchString(logs.String()) {
		t.Errorf("a stage without a cache mentions one:\n%s", logs)
	}
	rows, err := e.Status(stages)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"hit", "2 hits, 1 miss", "miss", "-"}
	for i, r := range rows {
		if r.Cache != want[i] {
			t.Errorf("status %s cache = %q, want %q", r.Name, r.Cache, want[i])
		}
	}
	var out bytes.Buffer
	PrintStatus(&out, rows)
	if !strings.Contains(out.String(), "CACHE") || !strings.Contains(out.String(), "2 hits, 1 miss") {
		t.Errorf("status table:\n%s", out.String())
	}
	// Outside a stage run, a report goes nowhere.
	ReportCache(context.Background(), true, "x")
}
