package flist

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// MountOptions configure Mount. The zero value reads blobs from the flist's
// routes without a disk cache.
type MountOptions struct {
	// CacheDir keeps decrypted blocks on disk (rfs's cache layout).
	CacheDir string
	// CacheSize bounds CacheDir: once the cached content exceeds it, the
	// least recently used blocks are removed. 0 means DefaultCacheSize; a
	// negative value leaves the cache unbounded (as rfs does).
	CacheSize int64
	// Store overrides the flist's routes.
	Store store.Store
	// Routes says where the flist's routes may lead when Store is nil: the
	// zero value refuses link-local addresses (always), loopback addresses
	// and dir:// routes (see store.RoutePolicy).
	Routes store.RoutePolicy
	// Timeouts bound the network waits of the routed stores; zero fields
	// take httpclient's defaults.
	Timeouts httpclient.Timeouts
	// Log receives the routes used and the errors the kernel only sees as
	// EIO.
	Log logrus.FieldLogger

	// FsName and Subtype name the mount in /proc/mounts: its source and
	// its type, fuse.<Subtype>. Empty means "flist" and "rfs".
	FsName, Subtype string
	// AllowOther lets every user read the mount, not only the mounting one
	// (root, or user_allow_other in /etc/fuse.conf).
	AllowOther bool
	// FUSELog, when set, receives every FUSE request and reply.
	FUSELog *log.Logger
}

// Mounted is a mounted flist.
type Mounted struct {
	server *fuse.Server
	reader *Reader
	dir    string
	once   sync.Once
	err    error
	done   chan struct{}
}

// timeout is the kernel's entry and attribute cache time; an flist never
// changes (rfs uses a year).
const timeout = time.Hour

// Mount mounts flist fl read-only at mountpoint with FUSE (fusermount3, or
// the mount syscall as root) and serves it until Unmount is called or ctx
// is done. Owners are reported with the correct gid; every file type is
// listed (rfs lists only directories, files and symlinks).
func Mount(ctx context.Context, fl, mountpoint string, opt MountOptions) (*Mounted, error) {
	r, err := Open(fl)
	if err != nil {
		return nil, err
	}
	s, err := source{opt.Store, opt.Routes, opt.Timeouts, opt.Log}.open(ctx, r)
	if err != nil {
		r.Close()
		return nil, err
	}
	rootIn, err := r.Inode(ctx, RootIno)
	if err == nil && rootIn.Type() != TypeDir {
		err = fmt.Errorf("flist %s: root inode is not a directory: %w", fl, ErrCorrupt)
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	mfs := &mountFS{r: r, fetch: fetcher{store: s, cache: opt.CacheDir}, log: logging.OrDiscard(opt.Log)}
	if opt.CacheDir != "" && opt.CacheSize >= 0 {
		mfs.fetch.bound, err = newCacheBound(filepath.Clean(opt.CacheDir), cmp.Or(opt.CacheSize, DefaultCacheSize), opt.Log)
		if err != nil {
			r.Close()
			return nil, err
		}
	}
	root := &node{mfs: mfs, in: rootIn}
	ttl := timeout
	server, err := fusefs.Mount(mountpoint, root, &fusefs.Options{
		EntryTimeout: &ttl,
		AttrTimeout:  &ttl,
		MountOptions: fuseOptions(opt),
	})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("mount %s on %s: %w", fl, mountpoint, err)
	}
	m := &Mounted{server: server, reader: r, dir: mountpoint, done: make(chan struct{})}
	go func() {
		server.Wait()
		r.Close()
		close(m.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = m.Unmount()
		case <-m.done:
		}
	}()
	return m, nil
}

// fuseOptions are the mount options of rfs: read-only, nosuid, nodev,
// default_permissions (the kernel checks modes and owners), optionally
// allow_other.
func fuseOptions(opt MountOptions) fuse.MountOptions {
	mo := fuse.MountOptions{
		FsName:     cmp.Or(opt.FsName, "flist"),
		Name:       cmp.Or(opt.Subtype, "rfs"),
		Options:    []string{"ro", "default_permissions"},
		AllowOther: opt.AllowOther,
		Debug:      opt.FUSELog != nil,
		Logger:     opt.FUSELog,
	}
	if os.Geteuid() == 0 {
		// Root mounts with mount(2) itself, as fusermount would (which
		// starts from nosuid,nodev too): an image needs no fusermount
		// binary, and a failure is the kernel's own error.
		mo.DirectMountStrict = true
		mo.DirectMountFlags = syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV
	}
	return mo
}

// Unmount unmounts the flist; it is safe to call more than once.
func (m *Mounted) Unmount() error {
	m.once.Do(func() {
		if err := m.server.Unmount(); err != nil {
			m.err = fmt.Errorf("unmount %s: %w", m.dir, err)
		}
	})
	if m.err == nil {
		<-m.done
	}
	return m.err
}

// Wait blocks until the flist is unmounted.
func (m *Mounted) Wait() { <-m.done }

type mountFS struct {
	r      *Reader
	fetch  fetcher
	flight flight
	recent recentBlocks
	log    logrus.FieldLogger
}

// eio logs err (the kernel only sees EIO) and returns EIO, or ENOENT for a
// name that does not exist.
func (m *mountFS) errno(what string, err error) syscall.Errno {
	if errors.Is(err, fs.ErrNotExist) {
		return syscall.ENOENT
	}
	m.log.WithError(err).Errorf("flist mount: %s", what)
	return syscall.EIO
}

type node struct {
	fusefs.Inode
	mfs *mountFS
	in  Inode

	blocksOnce sync.Once
	blocks     []Block
	blocksErr  error
}

var (
	_ fusefs.NodeGetattrer  = (*node)(nil)
	_ fusefs.NodeLookuper   = (*node)(nil)
	_ fusefs.NodeReaddirer  = (*node)(nil)
	_ fusefs.NodeReadlinker = (*node)(nil)
	_ fusefs.NodeOpener     = (*node)(nil)
	_ fusefs.NodeReader     = (*node)(nil)
	_ fusefs.NodeStatfser   = (*node)(nil)
)

func (n *node) fill(a *fuse.Attr) {
	in := &n.in
	a.Ino = uint64(in.Ino)
	a.Mode = in.Mode
	a.Size = in.Size
	a.Blocks = (in.Size + 511) / 512
	a.Blksize = 4096
	a.Owner = fuse.Owner{Uid: in.UID, Gid: in.GID}
	a.Rdev = uint32(in.Rdev)
	a.Mtime, a.Ctime, a.Atime = uint64(in.Mtime), uint64(in.Ctime), uint64(in.Mtime)
	a.Nlink = 1
	if in.Type() == TypeDir {
		a.Nlink = 2
	}
}

// Getattr implements fusefs.NodeGetattrer.
func (n *node) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fill(&out.Attr)
	return 0
}

// uninterrupted is a request's context without its cancellation. The kernel
// interrupts a request when the thread waiting for it gets a signal, and a
// Go reader's threads get SIGURG whenever its runtime preempts a goroutine:
// answering those with an error made a Go program's readdir fail with EIO.
// An flist request's work is local, or bounded by the store's retries, so
// it finishes instead (FUSE lets a server ignore interrupts; a fatal signal
// still ends the wait on the kernel's side).
func uninterrupted(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// Lookup implements fusefs.NodeLookuper.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	in, err := n.mfs.r.Lookup(uninterrupted(ctx), n.in.Ino, name)
	if err != nil {
		return nil, n.mfs.errno("lookup "+name, err)
	}
	if !ValidName(in.Name) {
		return nil, syscall.ENOENT
	}
	child := &node{mfs: n.mfs, in: in}
	child.fill(&out.Attr)
	return n.NewInode(ctx, child, fusefs.StableAttr{Mode: in.Mode & uint32(TypeMask), Ino: uint64(in.Ino)}), 0
}

// Readdir implements fusefs.NodeReaddirer.
func (n *node) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	children, err := n.mfs.r.Children(uninterrupted(ctx), n.in.Ino)
	if err != nil {
		return nil, n.mfs.errno("readdir", err)
	}
	entries := make([]fuse.DirEntry, 0, len(children))
	for _, c := range children {
		if !ValidName(c.Name) {
			continue
		}
		entries = append(entries, fuse.DirEntry{Name: c.Name, Ino: uint64(c.Ino), Mode: c.Mode & uint32(TypeMask)})
	}
	return fusefs.NewListDirStream(entries), 0
}

// Readlink implements fusefs.NodeReadlinker.
func (n *node) Readlink(context.Context) ([]byte, syscall.Errno) {
	if n.in.Type() != TypeSymlink {
		return nil, syscall.EINVAL
	}
	return n.in.Data, 0
}

// Open implements fusefs.NodeOpener: read-only, and the kernel may keep
// pages cached across opens since the content never changes.
func (n *node) Open(_ context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// Read implements fusefs.NodeReader. Block i holds bytes
// [i*BlockSize, (i+1)*BlockSize) of the file.
func (n *node) Read(ctx context.Context, _ fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	ctx = uninterrupted(ctx)
	n.blocksOnce.Do(func() {
		n.blocks, n.blocksErr = n.mfs.r.Blocks(ctx, n.in.Ino)
		if n.blocksErr == nil {
			n.blocksErr = checkBlockCount(&n.in, n.blocks)
		}
	})
	if n.blocksErr != nil {
		return nil, n.mfs.errno("read blocks", n.blocksErr)
	}
	end := min(off+int64(len(dest)), int64(n.in.Size))
	got := 0
	for pos := off; pos < end; {
		idx := int(pos / BlockSize)
		if idx >= len(n.blocks) {
			break
		}
		plain, err := n.block(ctx, idx)
		if err != nil {
			return nil, n.mfs.errno("read", err)
		}
		inBlock := int(pos % BlockSize)
		if inBlock >= len(plain) {
			break
		}
		c := copy(dest[got:int(end-off)], plain[inBlock:])
		got += c
		pos += int64(c)
	}
	return fuse.ReadResultData(dest[:got]), 0
}

// block returns block idx of the file: from the blocks read last, or
// fetched once however many reads want it at the same time.
func (n *node) block(ctx context.Context, idx int) ([]byte, error) {
	b := n.blocks[idx]
	plain, ok := n.mfs.recent.get(b.ID)
	if !ok {
		var err error
		plain, err = n.mfs.flight.do(ctx, b.ID, func(ctx context.Context) ([]byte, error) { return n.mfs.fetch.block(ctx, b) })
		if err != nil {
			return nil, err
		}
		n.mfs.recent.add(b.ID, plain)
	}
	// Blocks are shared by id between files: the length this file's size
	// allows is checked here, for every file, not once per fetch.
	if err := checkBlockLen(&n.in, idx, plain); err != nil {
		return nil, err
	}
	return plain, nil
}

// Statfs implements fusefs.NodeStatfser.
func (n *node) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize, out.Frsize, out.NameLen = 4096, 4096, 255
	return 0
}
