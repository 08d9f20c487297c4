package flist

import (
	"container/list"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// DefaultCacheSize bounds a mount's block cache when MountOptions.CacheSize
// is 0: 256 MiB of plain block content. A node reads a few hundred modules
// and firmware files through its two mounts, far less than this, and the
// cache of an image whose root is a tmpfs lives in RAM.
const DefaultCacheSize = 256 << 20

// blockCachePath is where a block cache in rfs's layout keeps the plain
// content of block id: <dir>/<hex[0:2]>/<hex[2:4]>/<hex(id)>.
func blockCachePath(dir string, id [HashSize]byte) string {
	h := store.Hex(id[:])
	return filepath.Join(dir, h[0:2], h[2:4], h)
}

// cacheBound keeps a block cache directory under a size limit: it tracks
// the blocks the fetcher reads from and writes to the cache, most recently
// used first, and removes the least recently used ones once their content
// adds up to more than the limit. It knows the blocks already in the
// directory when it starts (oldest first), so a restarted mounter keeps the
// cache of its previous run within the same bound. One mounter owns one
// cache directory: blocks another process adds are not counted until this
// one uses them.
type cacheBound struct {
	dir   string
	limit int64
	log   logrus.FieldLogger

	mu    sync.Mutex
	size  int64
	lru   list.List // of *cachedBlock, front = most recently used
	index map[[HashSize]byte]*list.Element
}

type cachedBlock struct {
	id   [HashSize]byte
	size int64
}

// newCacheBound accounts for the blocks already under dir (removing the
// temporary files a killed writer left) and evicts down to limit bytes.
func newCacheBound(dir string, limit int64, log logrus.FieldLogger) (*cacheBound, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("block cache %s: size limit %d is not positive", dir, limit)
	}
	c := &cacheBound{dir: dir, limit: limit, log: log, index: map[[HashSize]byte]*list.Element{}}
	found, err := c.scan()
	if err != nil {
		return nil, fmt.Errorf("block cache %s: %w", dir, err)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].mtime.Before(found[j].mtime) })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range found {
		c.index[f.id] = c.lru.PushFront(&cachedBlock{id: f.id, size: f.size})
		c.size += f.size
	}
	c.evict()
	return c, nil
}

type foundBlock struct {
	id    [HashSize]byte
	size  int64
	mtime time.Time
}

// scan lists the blocks of the cache directory's two levels of shards.
func (c *cacheBound) scan() ([]foundBlock, error) {
	var found []foundBlock
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == c.dir {
				return filepath.SkipAll
			}
			return err
		}
		depth := strings.Count(strings.TrimPrefix(p, c.dir), string(filepath.Separator))
		if d.IsDir() {
			if depth > 2 {
				return filepath.SkipDir
			}
			return nil
		}
		if depth != 3 || !d.Type().IsRegular() {
			return nil
		}
		if fsutil.IsTemp(d.Name()) {
			_ = os.Remove(p) // a write that never finished
			return nil
		}
		var id [HashSize]byte
		if n, err := hex.Decode(id[:], []byte(d.Name())); err != nil || n != HashSize || blockCachePath(c.dir, id) != p {
			return nil // not a block of this layout
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		found = append(found, foundBlock{id: id, size: info.Size(), mtime: info.ModTime()})
		return nil
	})
	return found, err
}

// touch records that block id, of size bytes, is in the cache and was just
// used, then evicts what no longer fits. Safe on a nil *cacheBound (an
// unbounded cache).
func (c *cacheBound) touch(id [HashSize]byte, size int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.index[id]; ok {
		b := e.Value.(*cachedBlock)
		c.size += int64(size) - b.size
		b.size = int64(size)
		c.lru.MoveToFront(e)
	} else {
		c.index[id] = c.lru.PushFront(&cachedBlock{id: id, size: int64(size)})
		c.size += int64(size)
	}
	c.evict()
}

// evict removes the least recently used blocks until the cache fits its
// limit. The block just used is at the front, so it goes last: only a block
// larger than the whole limit is removed right after it was written.
func (c *cacheBound) evict() {
	for c.size > c.limit && c.lru.Len() > 0 {
		b := c.lru.Remove(c.lru.Back()).(*cachedBlock)
		delete(c.index, b.id)
		c.size -= b.size
		if err := os.Remove(blockCachePath(c.dir, b.id)); err != nil && !errors.Is(err, fs.ErrNotExist) && c.log != nil {
			c.log.WithError(err).Warn("block cache: evict")
		}
	}
}

// bytes is the content the cache accounts for.
func (c *cacheBound) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
