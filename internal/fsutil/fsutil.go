// Package fsutil is how the build writes files and replaces folders: to a
// temporary name beside the final one, then renamed over it, so a reader,
// or the next build after a crash or a kill, sees the old content or the
// new one, never a part.
//
// # Durability
//
// A rename is atomic but not durable: after a power cut the new name may
// point at a file whose data never reached the disk. The build's rule is
// "records after data":
//
//   - Bulk data (a stage's outputs, copied modules, blobs of a dir store,
//     cache entries) is not synced file by file; that would cost more than
//     the work for thousands of small files.
//   - A record that vouches for data is written with Sync (the file is
//     synced before the rename, its folder after) and only once the data it
//     vouches for is durable, which one SyncFS of the data's filesystems
//     makes so: a stage's success marker after its outputs, an flist after
//     the blobs of its store.
//   - Entries that are checked on every read (the flist block cache, pinned
//     downloads) need neither: a torn entry fails its check and is fetched
//     again.
//
// The dir store's blob writer (pkg/store) follows the same rule without
// this package, to write blobs with O_DIRECT and few system calls.
package fsutil

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Option changes how Create, WriteFile and CopyFile write a file.
type Option func(*options)

type options struct {
	sync      bool
	keepOwner bool
	mtime     time.Time
}

// Sync makes the file durable before Commit returns: the file is synced
// before the rename and its folder after it. For records (see the package
// documentation), not for bulk data.
func Sync() Option { return func(o *options) { o.sync = true } }

// KeepOwner gives the new file the owner of the file it replaces. An
// unprivileged build owns every file of its trees, so a refused chown only
// means the owner cannot be kept, and is not an error.
func KeepOwner() Option { return func(o *options) { o.keepOwner = true } }

// ModTime sets the file's access and modification times, so a later run can
// tell by size and mtime that it is unchanged.
func ModTime(t time.Time) Option { return func(o *options) { o.mtime = t } }

// tempMarker is in every temporary name, after a leading dot: IsTemp
// recognises leftovers of a killed process by it.
const tempMarker = ".tmp-"

// IsTemp reports whether a file name is a temporary name of this package
// (the leftover of a process killed while writing).
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempMarker)
}

// File is an output file being written under a temporary name in the folder
// of its final path. Write to it (it is an *os.File), then Commit; defer
// Cleanup, which removes the temporary file unless Commit succeeded. Do not
// Close it: Commit does. Name is the temporary file's path, for a tool that
// writes it by name (sqlite, strip -o) while it is open, even one that
// replaces the file: Commit acts on whatever file has the name then.
type File struct {
	*os.File
	dir  *os.Root // the final path's folder
	base string   // final name in dir
	tmp  string   // temporary name in dir
	mode fs.FileMode
	opt  options
	done bool
}

// Create starts writing path, which gets exactly mode (no umask) when
// committed. Its folder is created when missing.
func Create(path string, mode fs.FileMode, opts ...Option) (*File, error) {
	f, err := create(func() (*os.Root, error) {
		dir := filepath.Dir(path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return os.OpenRoot(dir)
	}, filepath.Base(path), mode, opts)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return f, nil
}

// CreateIn is Create for name inside root: neither the folders on the way
// nor the temporary file can be outside root, and a symlink at name is
// replaced, never followed.
func CreateIn(root *os.Root, name string, mode fs.FileMode, opts ...Option) (*File, error) {
	f, err := create(func() (*os.Root, error) {
		dir := path.Dir(name)
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return root.OpenRoot(dir)
	}, path.Base(name), mode, opts)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	return f, nil
}

// create opens the final path's folder with openDir and a temporary file
// for base in it.
func create(openDir func() (*os.Root, error), base string, mode fs.FileMode, opts []Option) (*File, error) {
	dir, err := openDir()
	if err != nil {
		return nil, err
	}
	f := &File{dir: dir, base: base, mode: mode}
	for _, o := range opts {
		o(&f.opt)
	}
	var rnd [6]byte
	for range 100 {
		_, _ = rand.Read(rnd[:])
		f.tmp = "." + base + tempMarker + hex.EncodeToString(rnd[:])
		file, err := dir.OpenFile(f.tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			dir.Close()
			return nil, err
		}
		f.File = file
		return f, nil
	}
	dir.Close()
	return nil, fmt.Errorf("no free temporary name for %s", base)
}

// Path is the final path of the file.
func (f *File) Path() string { return filepath.Join(f.dir.Name(), f.base) }

// Commit gives the file its mode (and owner, times), syncs it when asked,
// closes it and renames it over its final path.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("write %s: already committed or cleaned up", f.Path())
	}
	if err := f.commit(); err != nil {
		f.Cleanup()
		return fmt.Errorf("write %s: %w", f.Path(), err)
	}
	return nil
}

func (f *File) commit() error {
	if err := f.follow(); err != nil {
		return err
	}
	err := f.File.Chmod(f.mode)
	if err == nil && f.opt.keepOwner {
		err = f.keepOwner()
	}
	if err == nil && !f.opt.mtime.IsZero() {
		err = f.dir.Chtimes(f.tmp, f.opt.mtime, f.opt.mtime)
	}
	if err == nil && f.opt.sync {
		err = f.File.Sync()
	}
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.dir.Rename(f.tmp, f.base)
	}
	if err != nil {
		return err
	}
	f.done = true
	defer f.dir.Close()
	if f.opt.sync {
		return syncDir(f.dir)
	}
	return nil
}

// follow makes f.File the file that now has the temporary name, in case a
// tool replaced the one Create made (sqlite removes and creates its
// database file).
func (f *File) follow() error {
	named, err := f.dir.Lstat(f.tmp)
	if err != nil {
		return err
	}
	if !named.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", f.tmp)
	}
	if open, err := f.File.Stat(); err == nil && os.SameFile(open, named) {
		return nil
	}
	file, err := f.dir.OpenFile(f.tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	f.File.Close()
	f.File = file
	return nil
}

func (f *File) keepOwner() error {
	st, err := f.dir.Lstat(f.base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := f.File.Chown(int(sys.Uid), int(sys.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return nil
}

func syncDir(r *os.Root) error {
	d, err := r.Open(".")
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// Cleanup removes the temporary file unless Commit succeeded. It is safe to
// call more than once: defer it right after Create.
func (f *File) Cleanup() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	_ = f.dir.Remove(f.tmp)
	f.dir.Close()
}

// WriteFile writes data to path through a temporary file with exactly mode
// (no umask), creating the folder when needed.
func WriteFile(path string, data []byte, mode fs.FileMode, opts ...Option) error {
	f, err := Create(path, mode, opts...)
	if err != nil {
		return err
	}
	return f.fill(bytes.NewReader(data))
}

// WriteFileIn is WriteFile for name inside root (see CreateIn).
func WriteFileIn(root *os.Root, name string, data []byte, mode fs.FileMode, opts ...Option) error {
	f, err := CreateIn(root, name, mode, opts...)
	if err != nil {
		return err
	}
	return f.fill(bytes.NewReader(data))
}

// CopyFile copies the content of src to dst through a temporary file, with
// mode.
func CopyFile(src, dst string, mode fs.FileMode, opts ...Option) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	f, err := Create(dst, mode, opts...)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := f.fill(in); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// fill copies r into f and commits it.
func (f *File) fill(r io.Reader) error {
	defer f.Cleanup()
	if _, err := io.Copy(f.File, r); err != nil {
		return fmt.Errorf("write %s: %w", f.Path(), err)
	}
	return f.Commit()
}

// ReplaceDir puts the folder fresh in place of dst, which may exist: dst is
// renamed aside first and removed after, so at every moment dst is the old
// tree or the new one. fresh must be on dst's filesystem (a folder made
// beside it); it gets mode 0755. A leftover of an earlier interrupted
// replacement is removed first.
func ReplaceDir(fresh, dst string) error {
	old := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".old")
	if err := RemoveAll(old); err != nil {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	if err := os.Chmod(fresh, 0o755); err != nil {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	if err := os.Rename(fresh, dst); err != nil {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	if err := RemoveAll(old); err != nil {
		return fmt.Errorf("replace %s: remove the previous tree: %w", dst, err)
	}
	return nil
}

// SyncFS makes everything written to the filesystems holding paths durable,
// with one syncfs(2) per filesystem: cheaper than syncing thousands of
// files one by one, and it covers files a tool wrote. A path that does not
// exist is skipped.
func SyncFS(paths ...string) error {
	seen := map[uint64]bool{}
	for _, p := range paths {
		// O_NONBLOCK: opening a FIFO must not wait for a writer.
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err == nil && !seen[st.Dev] {
			seen[st.Dev] = true
			err = unix.Syncfs(fd)
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
	}
	return nil
}

// LastLines returns the last n lines of b: what a failed command's log
// shows in an error message.
func LastLines(b []byte, n int) string {
	lines := strings.Split(string(bytes.TrimRight(b, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FileLastLines is LastLines of a file's content ("" when it cannot be read).
func FileLastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return LastLines(b, n)
}
