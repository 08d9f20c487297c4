package flist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// DefaultUnpackParallel is the default number of files downloaded at once.
const DefaultUnpackParallel = 8

// UnpackOptions configure Unpack. The zero value reads the blobs from the
// stores the flist routes to.
type UnpackOptions struct {
	// Store overrides the flist's routes.
	Store store.Store
	// CacheDir, when set, keeps decrypted blocks there (rfs's cache layout)
	// and reads them from there first.
	CacheDir string
	// Parallel is the number of files downloaded at once.
	Parallel int
	// Log receives the one warning about skipped device nodes.
	Log logrus.FieldLogger
}

// Unpack recreates the tree of flist fl under dir: directories, regular
// files (content checked against the recorded size), symlinks with their
// targets verbatim, FIFOs and sockets, and modes and modification times.
// Running as root it also restores ownership and creates device nodes;
// otherwise device nodes are skipped with one warning. It never writes
// through a symlink or outside dir, and it can be rerun over a partial
// result: existing files and symlinks are replaced.
func Unpack(ctx context.Context, fl, dir string, opt UnpackOptions) error {
	r, err := Open(fl)
	if err != nil {
		return err
	}
	defer r.Close()
	s, err := openStore(ctx, r, opt.Store)
	if err != nil {
		return err
	}
	if opt.Parallel <= 0 {
		opt.Parallel = DefaultUnpackParallel
	}
	u := &unpacker{r: r, root: filepath.Clean(dir), fetch: fetcher{store: s, cache: opt.CacheDir},
		owner: os.Geteuid() == 0, log: logging.OrDiscard(opt.Log)}
	if err := u.run(ctx, opt.Parallel); err != nil {
		return fmt.Errorf("unpack %s into %s: %w", fl, dir, err)
	}
	return nil
}

type unpacker struct {
	r     *Reader
	root  string
	fetch fetcher
	owner bool // restore ownership and create device nodes
	log   logrus.FieldLogger

	dirs           []dirMeta
	skippedDevices []string
}

type dirMeta struct {
	path string
	in   Inode
}

type unpackJob struct {
	path string
	in   Inode
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
				if err := u.file(ctx, job.path, &job.in); err != nil {
					errc <- fmt.Errorf("%s: %w", job.path, err)
					cancel()
					return
				}
			}
		}()
	}
	walkErr := u.r.Walk(ctx, func(p string, in *Inode) error {
		target := u.root
		if p != "/" {
			target = filepath.Join(u.root, filepath.FromSlash(p[1:]))
		}
		if in.Type() == TypeRegular {
			select {
			case jobs <- unpackJob{target, *in}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := u.node(target, in); err != nil {
			return fmt.Errorf("%s: %w", target, err)
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
	// Directory modes and times last: a read-only directory must not block
	// its own entries, and creating entries changes its mtime.
	for i := len(u.dirs) - 1; i >= 0; i-- {
		if err := u.meta(u.dirs[i].path, &u.dirs[i].in); err != nil {
			return fmt.Errorf("%s: %w", u.dirs[i].path, err)
		}
	}
	if n := len(u.skippedDevices); n > 0 {
		u.log.Warnf("skipped %d device node(s) (not root or no CAP_MKNOD), e.g. %s", n, u.skippedDevices[0])
	}
	return nil
}

// node creates a non-regular inode.
func (u *unpacker) node(target string, in *Inode) error {
	switch in.Type() {
	case TypeDir:
		if err := mkdirNoFollow(target, target == u.root); err != nil {
			return err
		}
		u.dirs = append(u.dirs, dirMeta{target, *in})
		return nil
	case TypeSymlink:
		if len(in.Data) == 0 {
			return fmt.Errorf("symlink inode %d has no target: %w", in.Ino, ErrCorrupt)
		}
		if err := removeLeaf(target); err != nil {
			return err
		}
		if err := os.Symlink(string(in.Data), target); err != nil {
			return err
		}
	case TypeFIFO, TypeSocket, TypeChar, TypeBlock:
		if err := removeLeaf(target); err != nil {
			return err
		}
		device := in.Type() == TypeChar || in.Type() == TypeBlock
		if device && !u.owner {
			u.skippedDevices = append(u.skippedDevices, target)
			return nil
		}
		err := unix.Mknod(target, in.Mode, int(in.Rdev))
		if device && errors.Is(err, unix.EPERM) {
			u.skippedDevices = append(u.skippedDevices, target)
			return nil
		}
		if err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	default:
		return fmt.Errorf("inode %d has unknown type %o: %w", in.Ino, in.Mode, ErrCorrupt)
	}
	return u.meta(target, in)
}

// file writes a regular file from its blocks.
func (u *unpacker) file(ctx context.Context, target string, in *Inode) error {
	blocks, err := u.r.Blocks(ctx, in.Ino)
	if err != nil {
		return err
	}
	if err := removeLeaf(target); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	n, err := u.copyBlocks(ctx, f, blocks)
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	if n != in.Size {
		return fmt.Errorf("blocks hold %d bytes, the inode says %d: %w", n, in.Size, ErrCorrupt)
	}
	return u.meta(target, in)
}

func (u *unpacker) copyBlocks(ctx context.Context, w io.Writer, blocks []Block) (uint64, error) {
	var n uint64
	for _, b := range blocks {
		plain, err := u.fetch.block(ctx, b)
		if err != nil {
			return n, err
		}
		if _, err := w.Write(plain); err != nil {
			return n, err
		}
		n += uint64(len(plain))
	}
	return n, nil
}

// meta applies ownership (as root), mode and times, never following a
// symlink. chmod comes after chown, which clears setuid bits.
func (u *unpacker) meta(target string, in *Inode) error {
	if u.owner {
		if err := os.Lchown(target, int(in.UID), int(in.GID)); err != nil {
			return err
		}
	}
	if in.Type() != TypeSymlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, target, in.Perm(), 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	ts := []unix.Timespec{{Sec: in.Mtime}, {Sec: in.Mtime}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// mkdirNoFollow creates a directory, accepting an existing one but never a
// symlink in its place (which would let later entries escape the root).
func mkdirNoFollow(path string, isRoot bool) error {
	mk := os.Mkdir
	if isRoot {
		mk = os.MkdirAll
	}
	err := mk(path, 0o755)
	if err == nil || !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("exists and is not a directory (%s)", fi.Mode().Type())
	}
	return nil
}

// removeLeaf removes a non-directory at path so it can be created anew.
func removeLeaf(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("a directory is in the way")
	}
	return os.Remove(path)
}
