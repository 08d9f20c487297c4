package flist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/internal/beneath"
	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// DefaultUnpackParallel is the default number of files downloaded at once.
const DefaultUnpackParallel = 8

// UnpackOptions configure Unpack. The zero value reads the blobs from the
// stores the flist routes to.
type UnpackOptions struct {
	// Store overrides the flist's routes.
	Store store.Store
	// Routes says where the flist's routes may lead when Store is nil: the
	// zero value refuses link-local addresses (always), loopback addresses
	// and dir:// routes (see store.RoutePolicy).
	Routes store.RoutePolicy
	// Timeouts bound the network waits of the routed stores; zero fields
	// take httpclient's defaults.
	Timeouts httpclient.Timeouts
	// CacheDir, when set, keeps decrypted blocks there (rfs's cache layout)
	// and reads them from there first.
	CacheDir string
	// Parallel is the number of files downloaded at once.
	Parallel int
	// Log receives the routes used and the one warning about skipped
	// device nodes.
	Log logrus.FieldLogger
}

// Unpack recreates the tree of flist fl under dir: directories, regular
// files (every block verified, the content exactly the recorded size),
// symlinks with their targets verbatim, FIFOs and sockets, and modes and
// modification times. Running as root it also restores ownership and
// creates device nodes; otherwise device nodes are skipped with one
// warning. Everything is created and changed through directory descriptors
// (package beneath), so nothing is written through a symlink or outside
// dir. A file that fails is removed; the rest of a failed unpack stays, and
// a rerun over it replaces existing files and symlinks.
func Unpack(ctx context.Context, fl, dir string, opt UnpackOptions) error {
	r, err := Open(fl)
	if err != nil {
		return err
	}
	defer r.Close()
	s, err := source{opt.Store, opt.Routes, opt.Timeouts, opt.Log}.open(ctx, r)
	if err != nil {
		return err
	}
	if opt.Parallel <= 0 {
		opt.Parallel = DefaultUnpackParallel
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unpack %s: %w", fl, err)
	}
	root, err := beneath.Open(filepath.Clean(dir))
	if err != nil {
		return fmt.Errorf("unpack %s: %w", fl, err)
	}
	defer root.Close()
	u := &unpacker{r: r, root: root, fetch: fetcher{store: s, cache: opt.CacheDir},
		owner: os.Geteuid() == 0, log: logging.OrDiscard(opt.Log)}
	if err := u.run(ctx, opt.Parallel); err != nil {
		return fmt.Errorf("unpack %s into %s: %w", fl, dir, err)
	}
	return nil
}

type unpacker struct {
	r     *Reader
	root  *beneath.Root
	fetch fetcher
	owner bool // restore ownership and create device nodes
	log   logrus.FieldLogger

	dirs           []unpackJob // modes and times applied last
	skippedDevices []string
}

// unpackJob is one inode and its path relative to the root ("" for the
// root itself).
type unpackJob struct {
	rel string
	in  Inode
}

func (u *unpacker) run(ctx context.Context, parallel int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan unpackJob)
	errc := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				if err := u.file(ctx, job.rel, &job.in); err != nil {
					errc <- fmt.Errorf("%s: %w", Printable("/"+job.rel), err)
					cancel()
					return
				}
			}
		}()
	}
	walkErr := u.r.Walk(ctx, func(p string, in *Inode) error {
		rel := p[1:]
		if in.Type() == TypeRegular {
			select {
			case jobs <- unpackJob{rel, *in}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := u.node(rel, in); err != nil {
			return fmt.Errorf("%s: %w", Printable(p), err)
		}
		return nil
	})
	close(jobs)
	wg.Wait()
	close(errc)
	// A worker's error is the cause; the walk then only saw the cancel.
	if err := <-errc; err != nil {
		return err
	}
	if walkErr != nil {
		return walkErr
	}
	// Directory modes and times last, deepest first: a read-only directory
	// must not block its own entries, and creating entries changes its
	// mtime.
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := &u.dirs[i]
		if err := u.dirMeta(d.rel, &d.in); err != nil {
			return fmt.Errorf("%s: %w", Printable("/"+d.rel), err)
		}
	}
	if n := len(u.skippedDevices); n > 0 {
		u.log.Warnf("skipped %d device node(s) (not root or no CAP_MKNOD), e.g. %s", n, Printable(u.skippedDevices[0]))
	}
	return nil
}

// node creates a non-regular inode.
func (u *unpacker) node(rel string, in *Inode) error {
	if in.Type() == TypeDir {
		d, err := u.root.Dir(rel, true)
		if err != nil {
			return err
		}
		u.dirs = append(u.dirs, unpackJob{rel, *in})
		return d.Close()
	}
	dir, name, err := u.leaf(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	dirfd := int(dir.Fd())
	switch in.Type() {
	case TypeSymlink:
		if len(in.Data) == 0 {
			return fmt.Errorf("symlink inode %d has no target: %w", in.Ino, ErrCorrupt)
		}
		if err := unix.Symlinkat(string(in.Data), dirfd, name); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	case TypeFIFO, TypeSocket, TypeChar, TypeBlock:
		device := in.Type() == TypeChar || in.Type() == TypeBlock
		if device && !u.owner {
			u.skippedDevices = append(u.skippedDevices, "/"+rel)
			return nil
		}
		err := unix.Mknodat(dirfd, name, in.Mode, int(in.Rdev))
		if device && errors.Is(err, unix.EPERM) {
			u.skippedDevices = append(u.skippedDevices, "/"+rel)
			return nil
		}
		if err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	default:
		return fmt.Errorf("inode %d has unknown type %o: %w", in.Ino, in.Mode, ErrCorrupt)
	}
	return beneath.SetLeaf(dir, name, u.owner, int(in.UID), int(in.GID),
		in.Type() != TypeSymlink, in.Perm(), time.Unix(in.Mtime, 0))
}

// file writes a regular file from its blocks, stopping at the first block
// that is not what the inode's size allows, and sets its metadata on the
// open descriptor. A file that fails is removed.
func (u *unpacker) file(ctx context.Context, rel string, in *Inode) (err error) {
	blocks, err := u.r.Blocks(ctx, in.Ino)
	if err != nil {
		return err
	}
	// Before anything is fetched or written: rows beyond what the size
	// allows would otherwise be written out in full.
	if err := checkBlockCount(in, blocks); err != nil {
		return err
	}
	dir, name, err := u.leaf(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	f, err := beneath.Create(dir, name)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = unix.Unlinkat(int(dir.Fd()), name, 0)
		}
	}()
	for i := range blocks {
		plain, err := u.fetch.sizedBlock(ctx, in, blocks, i)
		if err != nil {
			return err
		}
		if _, err := f.Write(plain); err != nil {
			return err
		}
	}
	return beneath.SetFile(f, u.owner, int(in.UID), int(in.GID), in.Perm(), time.Unix(in.Mtime, 0))
}

// leaf opens the parent directory of rel and clears the way for rel's
// base name: an earlier run's file or symlink there is removed, never
// followed. The caller closes dir.
func (u *unpacker) leaf(rel string) (dir *os.File, name string, err error) {
	parent, name := beneath.Split(rel)
	dir, err = u.root.Dir(parent, false)
	if err != nil {
		return nil, "", err
	}
	if err := beneath.RemoveLeaf(dir, name); err != nil {
		dir.Close()
		return nil, "", err
	}
	return dir, name, nil
}

// dirMeta applies a directory's owner, mode and times on its descriptor.
func (u *unpacker) dirMeta(rel string, in *Inode) error {
	d, err := u.root.Dir(rel, false)
	if err != nil {
		return err
	}
	err = beneath.SetFile(d, u.owner, int(in.UID), int(in.GID), in.Perm(), time.Unix(in.Mtime, 0))
	return errors.Join(err, d.Close())
}
