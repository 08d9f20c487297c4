package stage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
)

// inputSet maps "config KEY", "path /abs", "stage NAME" to the value, content
// hash or run id that the stage saw.
type inputSet map[string]string

func (s inputSet) fingerprint() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s\x00%s\x00", k, s[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// diff explains the first few differences between the current inputs and
// the recorded ones, or returns "" when they are equal.
func (s inputSet) diff(old inputSet, root string) string {
	var why []string
	keys := make([]string, 0, len(s)+len(old))
	for k := range s {
		keys = append(keys, k)
	}
	for k := range old {
		if _, ok := s[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return inputOrder(keys[i]) < inputOrder(keys[j]) || (inputOrder(keys[i]) == inputOrder(keys[j]) && keys[i] < keys[j])
	})
	for _, k := range keys {
		cur, inCur := s[k]
		prev, inOld := old[k]
		if inCur && inOld && cur == prev {
			continue
		}
		kind, name, _ := strings.Cut(k, " ")
		switch {
		case kind == "stage":
			why = append(why, "upstream "+name+" reran")
		case kind == "config" && inCur && inOld:
			why = append(why, fmt.Sprintf("%s changed: %s -> %s", name, shown(prev), shown(cur)))
		case kind == "config" && inCur:
			why = append(why, name+" is now read")
		case kind == "config":
			why = append(why, name+" is no longer read")
		case kind == "path" && cur == absent:
			why = append(why, relTo(root, name)+" was removed")
		case kind == "path" && prev == absent:
			why = append(why, relTo(root, name)+" appeared")
		case kind == "path" && inCur && inOld:
			why = append(why, relTo(root, name)+" changed")
		default:
			why = append(why, "the stage's inputs changed")
		}
	}
	if len(why) == 0 {
		return ""
	}
	if len(why) > 3 {
		why = append(why[:3], fmt.Sprintf("and %d more", len(why)-3))
	}
	return strings.Join(why, "; ")
}

// inputOrder puts the most telling reasons first: the user's own edits
// (config, files) before the upstream reruns they caused.
func inputOrder(k string) int {
	switch {
	case strings.HasPrefix(k, "config "):
		return 0
	case strings.HasPrefix(k, "path "):
		return 1
	}
	return 2
}

// marker is the record of one stage run: a success marker, or the record of
// a failed or running attempt.
type marker struct {
	Name        string    `json:"name"`
	Fingerprint string    `json:"fingerprint"`
	RunID       string    `json:"run_id,omitempty"`
	Inputs      inputSet  `json:"inputs"`
	Started     time.Time `json:"started"`
	DurationMS  int64     `json:"duration_ms"`
	Error       string    `json:"error,omitempty"`
	// Cache is what the artifact cache did in this run, when the stage has one.
	Cache *CacheResult `json:"cache,omitempty"`
	// Cancelled marks a run stopped because another stage failed or the
	// build was interrupted, as opposed to a failure of its own.
	Cancelled bool `json:"cancelled,omitempty"`
}

func markerPath(dir, name string) string  { return filepath.Join(dir, "stages", name+".done") }
func failedPath(dir, name string) string  { return filepath.Join(dir, "stages", name+".failed") }
func runningPath(dir, name string) string { return filepath.Join(dir, "stages", name+".running") }

func readMarker(path string) (marker, error) {
	var m marker
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("read %s: %w", path, err)
	}
	return m, nil
}

// writeRecord writes a marker file atomically and durably (fsutil.Sync),
// so a crash or a power cut leaves either the old state or the new one.
func (e *Engine) writeRecord(path string, m marker) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, b, 0o644, fsutil.Sync())
}

// flushOutputs makes the outputs of s durable before its success marker
// vouches for them (fsutil's rule: records after data): after a power cut,
// a marker never survives outputs that did not.
func flushOutputs(s Stage) error {
	if err := fsutil.SyncFS(s.Outputs...); err != nil {
		return fmt.Errorf("flush the outputs: %w", err)
	}
	return nil
}

func (e *Engine) removeMarker(name string) error {
	if err := os.Remove(markerPath(e.opt.Dir, name)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("forget stage %s: %w", name, err)
	}
	return nil
}

func shown(v string) string {
	if v == "" {
		return "(empty)"
	}
	return v
}
