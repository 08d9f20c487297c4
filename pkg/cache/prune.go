package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// publishGrace keeps unreferenced data objects this long: a publish
// uploads the data before the manifest that names it.
const publishGrace = time.Hour

// Contents is what the store holds.
type Contents struct {
	// Artifacts counts the manifests by stage.
	Artifacts map[string]int
	// Data counts the data objects and their bytes.
	Data  int
	Bytes int64
	// Oldest and Newest are the manifests' times (publish, or last use).
	Oldest, Newest time.Time
}

// Contents lists the store.
func (c *Cache) Contents(ctx context.Context) (Contents, error) {
	objs, err := c.objects.List(ctx, "")
	if err != nil {
		return Contents{}, err
	}
	out := Contents{Artifacts: map[string]int{}}
	for _, o := range objs {
		if isData(o.Name) {
			out.Data++
			out.Bytes += o.Size
			continue
		}
		stageName, ok := manifestStage(o.Name)
		if !ok {
			continue
		}
		out.Artifacts[stageName]++
		if out.Oldest.IsZero() || o.Modified.Before(out.Oldest) {
			out.Oldest = o.Modified
		}
		if o.Modified.After(out.Newest) {
			out.Newest = o.Modified
		}
	}
	return out, nil
}

func isData(name string) bool {
	return strings.HasPrefix(name, "data/") && strings.HasSuffix(name, ".tar.zst")
}

// manifestStage returns the stage of a manifest name <stage>/<key>.json.
func manifestStage(name string) (string, bool) {
	stageName, file, ok := strings.Cut(name, "/")
	key, isJSON := strings.CutSuffix(file, ".json")
	return stageName, ok && isJSON && hexSHA256.MatchString(key)
}

// PruneOptions bound the store (CACHE_MAX_AGE, CACHE_MAX_SIZE); zero
// values do not bound.
type PruneOptions struct {
	MaxAge  time.Duration
	MaxSize int64
	// Now is the current time (tests); zero means time.Now().
	Now time.Time
}

// Pruned is what Prune removed and kept.
type Pruned struct {
	Manifests, Data int   // removed
	Freed           int64 // bytes of data removed
	Kept            int   // artifacts left
	KeptBytes       int64 // their data
}

// Prune removes the artifacts whose manifests are older than MaxAge, then
// the oldest ones until their data fits in MaxSize, then every data object
// no manifest names (after a grace period that protects publishes in
// flight). A manifest that cannot be read is removed too.
func (c *Cache) Prune(ctx context.Context, opt PruneOptions) (Pruned, error) {
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	objs, err := c.objects.List(ctx, "")
	if err != nil {
		return Pruned{}, err
	}
	type entry struct {
		store.ObjectInfo
		object string // the data it names
	}
	var live []entry
	data := map[string]store.ObjectInfo{}
	var res Pruned
	remove := func(name string) error {
		if err := c.objects.Delete(ctx, name); err != nil {
			return fmt.Errorf("prune %s: %w", c.where, err)
		}
		return nil
	}
	for _, o := range objs {
		if isData(o.Name) {
			data[o.Name] = o
			continue
		}
		stageName, ok := manifestStage(o.Name)
		if !ok {
			continue
		}
		key := strings.TrimSuffix(strings.TrimPrefix(o.Name, stageName+"/"), ".json")
		m, err := c.readManifest(ctx, stageName, key)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			return res, err
		}
		if err != nil || (opt.MaxAge > 0 && now.Sub(o.Modified) > opt.MaxAge) {
			if err := remove(o.Name); err != nil {
				return res, err
			}
			res.Manifests++
			continue
		}
		live = append(live, entry{ObjectInfo: o, object: m.Object})
	}
	// Oldest first; drop until the data still named fits.
	sort.Slice(live, func(i, j int) bool { return live[i].Modified.Before(live[j].Modified) })
	refs := map[string]int{}
	var size int64
	for _, e := range live {
		if refs[e.object]++; refs[e.object] == 1 {
			size += data[e.object].Size
		}
	}
	for opt.MaxSize > 0 && size > opt.MaxSize && len(live) > 0 {
		e := live[0]
		live = live[1:]
		if err := remove(e.Name); err != nil {
			return res, err
		}
		res.Manifests++
		if refs[e.object]--; refs[e.object] == 0 {
			size -= data[e.object].Size
		}
	}
	for name, o := range data {
		if refs[name] > 0 || now.Sub(o.Modified) < publishGrace {
			continue
		}
		if err := remove(name); err != nil {
			return res, err
		}
		res.Data++
		res.Freed += o.Size
	}
	res.Kept, res.KeptBytes = len(live), size
	return res, nil
}

// touch rewrites a manifest a hit used, so its time is the last use and
// Prune removes what nobody restores any more. At most once a day per
// artifact; failures do not matter.
func (c *Cache) touch(ctx context.Context, m manifest) {
	c.mu.Lock()
	push := c.push && !c.down
	c.mu.Unlock()
	if !push || time.Since(m.modified) < 24*time.Hour {
		return
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err == nil {
		err = c.objects.Put(ctx, manifestName(m.Stage, m.Key), strings.NewReader(string(b)), int64(len(b)))
	}
	if err != nil {
		c.log.Debugf("touch manifest %s: %v", manifestName(m.Stage, m.Key), err)
	}
}
