package stage

import (
	"context"
	"fmt"
	"sync"
)

// CacheResult is what a stage's artifact cache did in one run: how many
// artifacts it restored instead of building (hits) and how many it built
// (misses). The marker records it, the stage's "done" line says it, and
// Status shows it.
type CacheResult struct {
	Hits   int `json:"hits"`
	Misses int `json:"misses"`
	// Note says where the last restored artifact came from.
	Note string `json:"note,omitempty"`
}

// Summary is the short form Status shows: "hit", "2 hits, 1 miss", "miss".
func (r *CacheResult) Summary() string {
	if r == nil || r.Hits+r.Misses == 0 {
		return "-"
	}
	if r.Hits+r.Misses == 1 {
		if r.Hits == 1 {
			return "hit"
		}
		return "miss"
	}
	return fmt.Sprintf("%s, %s", plural(r.Hits, "hit", "hits"), plural(r.Misses, "miss", "misses"))
}

// logSuffix is what the "done" line adds.
func (r *CacheResult) logSuffix() string {
	switch {
	case r == nil:
		return ""
	case r.Hits == 1 && r.Misses == 0 && r.Note != "":
		return " (restored from the artifact cache: " + r.Note + ")"
	case r.Misses == 0:
		return " (restored from the artifact cache)"
	}
	return " (artifact cache: " + r.Summary() + ")"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

type cacheReportKey struct{}

// cacheReport collects the reports of one stage run; component builds of
// one stage report concurrently.
type cacheReport struct {
	mu  sync.Mutex
	res *CacheResult
}

func withCacheReport(ctx context.Context) (context.Context, *cacheReport) {
	r := &cacheReport{}
	return context.WithValue(ctx, cacheReportKey{}, r), r
}

func (r *cacheReport) result() *CacheResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res
}

// ReportCache tells the engine running the stage of ctx that an artifact
// was restored from the cache (hit, with a note saying from where) or built
// (a miss). Outside a stage run it does nothing.
func ReportCache(ctx context.Context, hit bool, note string) {
	r, ok := ctx.Value(cacheReportKey{}).(*cacheReport)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.res == nil {
		r.res = &CacheResult{}
	}
	if hit {
		r.res.Hits++
		r.res.Note = note
	} else {
		r.res.Misses++
	}
}
