package stage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
)

// absent is the fingerprint of an input path that does not exist.
const absent = "absent"

// hashCache remembers file content hashes by (size, mtime, inode), the way
// Git's index does, so a no-change rerun does not read large inputs (a kernel
// tarball) again. Entries modified in the last two seconds are not cached:
// a file changed twice within the clock's granularity must still be seen.
type hashCache struct {
	path    string
	mu      sync.Mutex
	entries map[string]cacheEntry
	dirty   bool
}

type cacheEntry struct {
	Size    int64  `json:"s"`
	MtimeNS int64  `json:"m"`
	Ino     uint64 `json:"i"`
	Hash    string `json:"h"`
}

func loadHashCache(path string) *hashCache {
	c := &hashCache{path: path, entries: map[string]cacheEntry{}}
	if b, err := os.ReadFile(path); err == nil {
		// A corrupt cache is only a slower run, never an error.
		_ = json.Unmarshal(b, &c.entries)
	}
	return c
}

func (c *hashCache) save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	b, err := json.Marshal(c.entries)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFile(c.path, b, 0o644); err != nil {
		return err
	}
	c.dirty = false
	return nil
}

// tree fingerprints a file or folder: for a folder every entry's relative
// path, type, permission bits, and content or symlink target, in lexical
// order. The top-level path is followed if it is a symlink; entries inside a
// folder are not. Folders named .git are skipped: their churn is not content.
func (c *hashCache) tree(p string) (string, error) {
	st, err := os.Stat(p)
	if os.IsNotExist(err) {
		return absent, nil
	}
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return c.file(p, st)
	}
	h := sha256.New()
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == p {
			return nil
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(p, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "L %s %s\n", rel, target)
		case d.IsDir():
			fmt.Fprintf(h, "D %s %o\n", rel, info.Mode().Perm())
		case info.Mode().IsRegular():
			sum, err := c.file(path, info)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "F %s %o %s\n", rel, info.Mode().Perm(), sum)
		default:
			fmt.Fprintf(h, "S %s %v\n", rel, info.Mode())
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return "tree:" + hex.EncodeToString(h.Sum(nil)), nil
}

func (c *hashCache) file(path string, st fs.FileInfo) (string, error) {
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	key := cacheEntry{Size: st.Size(), MtimeNS: st.ModTime().UnixNano(), Ino: ino}
	c.mu.Lock()
	e, ok := c.entries[path]
	c.mu.Unlock()
	if ok && e.Size == key.Size && e.MtimeNS == key.MtimeNS && e.Ino == key.Ino {
		return e.Hash, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	key.Hash = hex.EncodeToString(h.Sum(nil))
	if time.Since(st.ModTime()) > 2*time.Second {
		c.mu.Lock()
		c.entries[path] = key
		c.dirty = true
		c.mu.Unlock()
	}
	return key.Hash, nil
}
