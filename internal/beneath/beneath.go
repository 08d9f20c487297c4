// Package beneath creates files under a root directory and changes their
// metadata through directory descriptors. Paths are resolved one component
// at a time with O_NOFOLLOW from the root's descriptor, entries are created
// and changed with the *at system calls relative to their parent's
// descriptor, and a regular file's mode, owner and times are set on its open
// descriptor. No symlink is ever followed, whoever made it and whenever, so
// extracting a hostile archive or flist cannot touch anything outside the
// root, even while paths under it change.
package beneath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Errors wrapped when a path under the root cannot be used as a directory.
var (
	// ErrSymlink means a component of the path is a symlink.
	ErrSymlink = errors.New("is a symlink")
	// ErrNotDir means a component of the path is neither a directory nor a
	// symlink.
	ErrNotDir = errors.New("is not a directory")
	// ErrIsDir means a directory is where a non-directory is to be created.
	ErrIsDir = errors.New("a directory is in the way")
)

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// Root is an open directory under which paths are resolved.
type Root struct {
	fd   int
	name string
}

// Open opens the directory at path as a root. path itself may be a symlink:
// the caller chose it.
func Open(path string) (*Root, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Root{fd: fd, name: path}, nil
}

// Name is the path the root was opened with.
func (r *Root) Name() string { return r.name }

// Close closes the root's descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Dir opens the directory rel (slash-separated, relative to the root; "" is
// the root). With create, missing directories are made with mode 0755 (the
// caller sets the final mode later). A component that is a symlink fails
// with ErrSymlink, one that is something else with ErrNotDir; ".." fails.
func (r *Root) Dir(rel string, create bool) (*os.File, error) {
	fd, err := unix.Openat(r.fd, ".", dirFlags, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: r.name, Err: err}
	}
	done := ""
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			unix.Close(fd)
			return nil, fmt.Errorf("%s: %w", rel, fs.ErrInvalid)
		}
		done = join(done, c)
		next, err := unix.Openat(fd, c, dirFlags, 0)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || err == unix.EEXIST {
				next, err = unix.Openat(fd, c, dirFlags, 0)
			}
		}
		if err != nil {
			err = classify(fd, c, err)
			unix.Close(fd)
			return nil, fmt.Errorf("%s: %w", done, err)
		}
		unix.Close(fd)
		fd = next
	}
	return os.NewFile(uintptr(fd), join(r.name, rel)), nil
}

// classify turns the error of opening name in dirfd as a directory into
// ErrSymlink or ErrNotDir when that is the cause.
func classify(dirfd int, name string, err error) error {
	if err != unix.ELOOP && err != unix.ENOTDIR {
		return err
	}
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return ErrSymlink
	}
	return ErrNotDir
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// Split returns the parent directory and base name of a slash-separated
// relative path ("a/b/c" gives "a/b", "c"; "c" gives "", "c").
func Split(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// Lstat returns the metadata of name in dir without following a symlink.
func Lstat(dir *os.File, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

// RemoveLeaf removes the non-directory name in dir so that it can be
// created anew; a missing name is fine, a directory fails with ErrIsDir.
func RemoveLeaf(dir *os.File, name string) error {
	st, err := Lstat(dir, name)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return ErrIsDir
	}
	return unix.Unlinkat(int(dir.Fd()), name, 0)
}

// Create creates the regular file name in dir for writing, exclusively and
// without following a symlink, with mode 0600 (the caller sets the final
// mode on the descriptor).
func Create(dir *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), dir.Name()+"/"+name), nil
}

// SetFile sets the owner (when chown), the mode and the modification (and
// access) time (unless mtime is zero) of an open file or directory. The mode is set after the
// owner, since chown clears the setuid and setgid bits.
func SetFile(f *os.File, chown bool, uid, gid int, mode uint32, mtime time.Time) error {
	if chown {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(int(f.Fd()), mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return Futimes(f, mtime)
}

// Futimes sets the access and modification times of an open file to mtime
// (utimensat with a NULL path: the descriptor itself, no /proc needed). A
// zero mtime leaves them.
func Futimes(f *os.File, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, f.Fd(), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("set times: %w", errno)
	}
	return nil
}

// SetLeaf sets the owner (when chown), the mode (when chmod) and the times
// (unless mtime is zero) of name in dir without following it: for symlinks,
// FIFOs, sockets and device nodes, which are not opened.
func SetLeaf(dir *os.File, name string, chown bool, uid, gid int, chmod bool, mode uint32, mtime time.Time) error {
	fd := int(dir.Fd())
	if chown {
		if err := unix.Fchownat(fd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if chmod {
		if err := chmodNoFollow(fd, name, mode); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if mtime.IsZero() {
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(fd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// chmodNoFollow is fchmodat(AT_SYMLINK_NOFOLLOW) (fchmodat2, Linux 6.6), or
// on older kernels a chmod through /proc/self/fd of an O_PATH descriptor
// that was checked not to be a symlink (what glibc does).
func chmodNoFollow(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
		return err
	}
	return chmodNoFollowProc(dirfd, name, mode)
}

func chmodNoFollowProc(dirfd int, name string, mode uint32) error {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.EOPNOTSUPP
	}
	return unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), mode)
}
