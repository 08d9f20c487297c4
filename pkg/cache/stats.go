package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
)

// Outcomes of a Do.
const (
	outcomeHit  = "hit"
	outcomeMiss = "miss"
)

// Stats are one work tree's artifact cache counters, kept in
// STATE_DIR/cache-stats.json across builds (mage clean resets them).
type Stats struct {
	Hits      int   `json:"hits"`
	Misses    int   `json:"misses"`
	Restored  int64 `json:"restored_bytes"`
	Published int64 `json:"published_bytes"`
	// Last is the latest result of each artifact (stage, or stage/component).
	Last map[string]Result `json:"last"`
}

// Result is what one Do did.
type Result struct {
	Key     string    `json:"key"`
	Outcome string    `json:"outcome"` // hit or miss
	When    time.Time `json:"when"`
	Seconds float64   `json:"seconds"` // the restore, or the build and publish
	Bytes   int64     `json:"bytes"`   // restored, or published (0: not published)
}

type statsFile struct {
	path string
	mu   sync.Mutex
}

// ReadStats reads the counters kept in stateDir; none yet is no error.
func ReadStats(stateDir string) (Stats, error) {
	return (&statsFile{path: filepath.Join(stateDir, "cache-stats.json")}).read()
}

func (f *statsFile) read() (Stats, error) {
	s := Stats{Last: map[string]Result{}}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("cache statistics: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return Stats{Last: map[string]Result{}}, fmt.Errorf("cache statistics %s: %w", f.path, err)
	}
	if s.Last == nil {
		s.Last = map[string]Result{}
	}
	return s, nil
}

// record adds one result. Statistics are a convenience: a file that cannot
// be read or written is logged, never an error.
func (c *Cache) record(a Artifact, key, outcome string, n int64, took time.Duration) {
	f := c.stats
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.read()
	if err != nil {
		c.log.Debugf("%v (starting over)", err)
	}
	if outcome == outcomeHit {
		s.Hits++
		s.Restored += n
	} else {
		s.Misses++
		s.Published += n
	}
	s.Last[a.id()] = Result{Key: key, Outcome: outcome, When: time.Now().UTC(), Seconds: took.Seconds(), Bytes: n}
	b, err := json.MarshalIndent(s, "", "  ")
	if err == nil {
		err = fsutil.WriteFile(f.path, b, 0o644)
	}
	if err != nil {
		c.log.Debugf("save cache statistics: %v", err)
	}
}
