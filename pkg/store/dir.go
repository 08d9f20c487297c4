package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/internal/redact"
)

// minBlob is the smallest blob the rfs codec can produce: a one-byte snappy
// header plus the 16-byte GCM tag. A shorter file in a dir store is the
// leftover of a crash, not a blob, and Exists does not count it.
const minBlob = 17

// Dir is a store in a local directory. It writes <root>/<hex[0:2]>/<hex> (the
// layout of rfs since 2024) and reads that, then the flat <root>/<hex> layout
// of rfs v2.0.x.
type Dir struct {
	root   string
	prefix string // root ending in a separator
	url    string

	flatOnce sync.Once
	flat     bool             // the root holds blobs in the flat layout
	shards   [256]atomic.Bool // shard directory <hex[0:2]> known to exist
	noDirect atomic.Bool      // the filesystem refused O_DIRECT
	dirty    atomic.Bool      // blobs written since the last Sync

	waitsOnce sync.Once
	waits     bool // writes wait for a device (see Local)
}

func openDir(rawURL string, opt Options) (*Dir, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", redact.MaskURL(rawURL), ErrInvalidURL)
	}
	if u.Host != "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("store %s: dir:// needs an absolute path (dir:///abs/path): %w",
			redact.MaskURL(rawURL), ErrInvalidURL)
	}
	if opt.Policy != nil {
		if err := opt.Policy.checkDir(u.Path); err != nil {
			return nil, fmt.Errorf("store %s: %w", redact.MaskURL(rawURL), err)
		}
	}
	return NewDir(u.Path), nil
}

// NewDir returns the dir store rooted at root (an absolute path). The
// directory is created on the first Set.
func NewDir(root string) *Dir {
	root = filepath.Clean(root)
	return &Dir{root: root, prefix: strings.TrimSuffix(root, "/") + "/", url: "dir://" + root}
}

// Root is the store's directory.
func (d *Dir) Root() string { return d.root }

// shardedPath is where a blob is in the layout Set writes,
// <root>/<hex[0:2]>/<hex>, and flatPath where rfs v2.0.x put it. Built by
// concatenation: Exists runs once per blob of a pack, and filepath.Join's
// cleaning was a third of its CPU (the names hold no separators, the root
// is clean).
func (d *Dir) shardedPath(name string) string { return d.prefix + name[:2] + "/" + name }

func (d *Dir) flatPath(name string) string { return d.prefix + name }

// Get implements Store.
func (d *Dir) Get(_ context.Context, id []byte) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	name := Hex(id)
	for _, p := range []string{d.shardedPath(name), d.flatPath(name)} {
		b, err := readFileBlob(p)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("dir store %s: read blob %s: %w", d.root, Hex(id), err)
		}
	}
	return nil, fmt.Errorf("dir store %s: blob %s: %w", d.root, Hex(id), ErrNotFound)
}

func readFileBlob(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return readBlob(f, st.Size())
}

// Exists implements Store. The flat layout is looked at only in a store
// whose root held a flat blob when this Dir first looked (see hasFlat): in
// the others it would cost a second failed lookup per new blob.
func (d *Dir) Exists(_ context.Context, id []byte) (bool, error) {
	if err := checkID(id); err != nil {
		return false, err
	}
	name := Hex(id)
	found, err := isBlob(d.shardedPath(name))
	if found || err != nil || !d.hasFlat() {
		return found, err
	}
	return isBlob(d.flatPath(name))
}

// isBlob reports whether p is a regular file long enough to be a blob.
func isBlob(p string) (bool, error) {
	var st unix.Stat_t
	err := unix.Stat(p, &st)
	switch {
	case err == nil:
		return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size >= minBlob, nil
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return false, nil
	}
	return false, fmt.Errorf("dir store: stat blob: %w", &os.PathError{Op: "stat", Path: p, Err: err})
}

// flatNameLen is the length of a blob's name: the hex of a 32-byte id.
const flatNameLen = 64

// hasFlat reports whether the root holds a blob in the flat layout of rfs
// v2.0.x. It looks once, at the first call, and stops at the first such
// name: stores written since hold only the <hex[0:2]> directories. An
// unreadable root counts as having flat blobs.
func (d *Dir) hasFlat() bool {
	d.flatOnce.Do(func() {
		f, err := os.Open(d.root)
		if err != nil {
			d.flat = !errors.Is(err, fs.ErrNotExist)
			return
		}
		defer f.Close()
		for {
			names, err := f.Readdirnames(1024)
			for _, name := range names {
				if len(name) == flatNameLen && !strings.HasPrefix(name, ".") {
					d.flat = true
					return
				}
			}
			if err != nil {
				d.flat = !errors.Is(err, io.EOF)
				return
			}
		}
	})
	return d.flat
}

// Set implements Store. The blob is written to a temporary file in its shard
// directory and renamed, so readers never see a partial blob. The file is
// not synced: Sync makes every blob written so far durable at once
// (fsutil's rule; the writing itself bypasses fsutil for O_DIRECT and
// fewer system calls per blob).
//
// The page-aligned bulk of a blob is written with O_DIRECT, straight from
// the caller's buffer to the disk: a pack writes each blob once and reads
// it rarely, and copying it into the page cache (and writing it back
// later) cost more CPU than encoding it. The unaligned tail (under a page)
// goes through the page cache. Blobs in unaligned memory, and filesystems
// that refuse O_DIRECT, are written through the page cache.
func (d *Dir) Set(_ context.Context, id, blob []byte) error {
	if err := checkID(id); err != nil {
		return err
	}
	name := Hex(id)
	shard := d.prefix + name[:2]
	fd, tmp, err := d.createTemp(id[0], shard)
	if err != nil {
		return fmt.Errorf("dir store: %w", err)
	}
	err = d.write(fd, blob)
	// The mode is not left to the umask: the store is often served over
	// HTTP by another user.
	err = errors.Join(err, unix.Fchmod(fd, 0o644), unix.Close(fd))
	if err == nil {
		err = unix.Rename(tmp, d.shardedPath(name))
	}
	if err != nil {
		_ = unix.Unlink(tmp)
		return fmt.Errorf("dir store %s: write blob %s: %w", d.root, name, err)
	}
	d.dirty.Store(true)
	return nil
}

// createTemp creates a new temporary file in the shard directory of id[0],
// creating the directory the first time (or again, should it have been
// removed meanwhile). The file is opened without os.File, whose poller
// registration costs five system calls per blob.
func (d *Dir) createTemp(first byte, shard string) (int, string, error) {
	for attempt := 0; ; attempt++ {
		if !d.shards[first].Load() {
			if err := os.MkdirAll(shard, 0o755); err != nil {
				return -1, "", err
			}
			d.shards[first].Store(true)
		}
		tmp := filepath.Join(shard, ".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		switch {
		case err == nil:
			return fd, tmp, nil
		case attempt >= 10:
		case errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOENT):
			d.shards[first].Store(false)
			continue
		}
		return -1, "", &os.PathError{Op: "create", Path: tmp, Err: err}
	}
}

// directAlign is the unit of O_DIRECT writes: a page, which is a multiple
// of any disk's logical block size and keeps the buffered tail on a page of
// its own (a partial write to a page the disk already holds would first
// read that page back).
var directAlign = max(4096, os.Getpagesize())

// write writes blob to the new, empty file fd.
func (d *Dir) write(fd int, blob []byte) error {
	off := 0
	if len(blob) >= directAlign && !d.noDirect.Load() &&
		uintptr(unsafe.Pointer(unsafe.SliceData(blob)))%uintptr(directAlign) == 0 {
		n, err := d.writeDirect(fd, blob[:len(blob)/directAlign*directAlign])
		if err != nil {
			return err
		}
		off = n
	}
	for off < len(blob) {
		n, err := unix.Pwrite(fd, blob[off:], int64(off))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		off += n
	}
	return nil
}

// writeDirect writes the aligned head of a blob with O_DIRECT at offset 0
// and returns how much it wrote: all of it, or less when the write came
// short (the rest then goes through the page cache). A filesystem that
// refuses O_DIRECT turns it off for the store.
func (d *Dir) writeDirect(fd int, head []byte) (int, error) {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_DIRECT); err != nil {
		if errors.Is(err, unix.EINVAL) {
			d.noDirect.Store(true)
			return 0, nil
		}
		return 0, err
	}
	n, err := unix.Pwrite(fd, head, 0)
	if errors.Is(err, unix.EINVAL) && n <= 0 {
		d.noDirect.Store(true) // e.g. a device with blocks larger than a page
		n, err = 0, nil
	}
	if errors.Is(err, unix.EINTR) {
		n, err = max(n, 0), nil
	}
	if err != nil {
		return 0, err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0); err != nil {
		return 0, err
	}
	return n, nil
}

// Sync implements Syncer with one syncfs(2) of the store's filesystem, which
// makes durable every blob whose Set returned before the call: the data,
// the files and their names. It does nothing when no blob was written
// since the last Sync.
func (d *Dir) Sync(context.Context) error {
	if !d.dirty.Swap(false) {
		return nil
	}
	// Not fsutil.SyncFS, which skips a missing path: a root removed after
	// blobs were written is lost data, an error.
	fd, err := unix.Open(d.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Syncfs(fd)
		unix.Close(fd)
	}
	if err != nil {
		d.dirty.Store(true)
		return fmt.Errorf("dir store %s: sync: %w", d.root, err)
	}
	return nil
}

// Local implements Local: a dir store's writes wait for a device unless
// its root (or, before the first Set, the nearest folder above it that
// exists) is in memory: tmpfs or ramfs.
func (d *Dir) Local() (local, waits bool) {
	d.waitsOnce.Do(func() {
		d.waits = true
		for p := d.root; ; p = filepath.Dir(p) {
			var st unix.Statfs_t
			err := unix.Statfs(p, &st)
			if err == nil {
				d.waits = st.Type != unix.TMPFS_MAGIC && st.Type != unix.RAMFS_MAGIC
				return
			}
			if !errors.Is(err, unix.ENOENT) || p == filepath.Dir(p) {
				return
			}
		}
	})
	return true, d.waits
}

// Routes implements Store: dir://<root>, as rfs writes it.
func (d *Dir) Routes() []Route { return []Route{{Start: 0, End: 255, URL: d.url}} }
