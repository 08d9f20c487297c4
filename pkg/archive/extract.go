package archive

import (
	"archive/tar"
	"context"
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

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/internal/logging"
)

// Limits of Linux paths; longer names are refused with the entry's name
// instead of failing later with ENAMETOOLONG on some component.
const (
	maxComponent = 255
	maxPath      = 4095
)

// dirMeta is a directory's mode and times, applied after its children are
// written (a 0555 directory must stay writable until then, and writing a
// child changes the directory's mtime).
type dirMeta struct {
	path     string
	mode     fs.FileMode
	mtime    time.Time
	uid, gid int
}

type extractor struct {
	root  string
	opt   Options
	log   logrus.FieldLogger
	chown bool
	// dirs holds relative paths known to be real directories (not symlinks),
	// so each parent is checked once rather than for every entry.
	dirs map[string]bool
	// seen holds the relative paths written by this archive and whether
	// each is a directory.
	seen    map[string]bool
	meta    []dirMeta
	buf     []byte
	entries int
	devices int
}

func newExtractor(root string, opt Options) (*extractor, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	return &extractor{
		root:  abs,
		opt:   opt,
		log:   logging.OrDiscard(opt.Log),
		chown: opt.Chown && os.Geteuid() == 0,
		dirs:  map[string]bool{".": true},
		seen:  map[string]bool{},
		buf:   make([]byte, 1<<20),
	}, nil
}

func (x *extractor) run(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar after %d entries: %w", x.entries, err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		x.entries++
	}
	return x.finishDirs()
}

func unsafe(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsafe, fmt.Sprintf(format, args...))
}

// relPath checks an archive name and returns it relative to the root after
// StripComponents; skip is true when nothing is left of it.
func (x *extractor) relPath(name string) (rel string, skip bool, err error) {
	if strings.HasPrefix(name, "/") {
		return "", false, unsafe("absolute path")
	}
	var parts []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", false, unsafe(`".." path component`)
		}
		if len(c) > maxComponent {
			return "", false, unsafe("path component longer than %d bytes", maxComponent)
		}
		parts = append(parts, c)
	}
	if len(parts) <= x.opt.StripComponents {
		return "", true, nil
	}
	rel = strings.Join(parts[x.opt.StripComponents:], "/")
	if len(x.root)+1+len(rel) > maxPath {
		return "", false, unsafe("path longer than %d bytes", maxPath)
	}
	return rel, false, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeChar, tar.TypeBlock:
		x.devices++
		return nil
	}
	rel, skip, err := x.relPath(hdr.Name)
	if err != nil || skip {
		return err
	}
	isDir := hdr.Typeflag == tar.TypeDir
	if wasDir, dup := x.seen[rel]; dup && !(wasDir && isDir) {
		return unsafe("duplicate entry")
	}
	if err := x.parents(rel, true); err != nil {
		return err
	}
	x.seen[rel] = isDir
	full := filepath.Join(x.root, rel)
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		err = x.file(full, hdr, r)
	case tar.TypeDir:
		err = x.dir(rel, full, hdr)
	case tar.TypeSymlink:
		err = x.symlink(rel, full, hdr)
	case tar.TypeLink:
		err = x.hardlink(full, hdr)
	case tar.TypeFifo:
		err = x.create(full, func() error { return unix.Mkfifo(full, uint32(mode(hdr).Perm())) })
		if err == nil {
			err = x.attrs(full, hdr, true)
		}
	default:
		x.log.WithField("entry", hdr.Name).Warnf("skipping tar entry of unsupported type %q", hdr.Typeflag)
		delete(x.seen, rel)
	}
	return err
}

// parents makes sure every parent directory of rel is a real directory
// inside the root, creating missing ones when create is set. A parent that
// is a symlink fails the entry, whoever created the symlink.
func (x *extractor) parents(rel string, create bool) error {
	dir := path.Dir(rel)
	if x.dirs[dir] {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		if x.dirs[p] {
			continue
		}
		full := filepath.Join(x.root, p)
		st, err := os.Lstat(full)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := os.Mkdir(full, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			x.dirs[p] = true
			continue
		case err != nil:
			return err
		case st.Mode()&fs.ModeSymlink != 0:
			return unsafe("parent %s is a symlink", p)
		case !st.IsDir():
			return fmt.Errorf("parent %s is not a directory", p)
		}
		x.dirs[p] = true
	}
	return nil
}

// create runs mk, and if the path exists already replaces what is there:
// a file or symlink is removed (never followed), a directory is refused.
func (x *extractor) create(full string, mk func() error) error {
	err := mk()
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	st, lerr := os.Lstat(full)
	if lerr != nil {
		return lerr
	}
	if st.IsDir() {
		return unsafe("would replace an existing directory")
	}
	if err := os.Remove(full); err != nil {
		return err
	}
	return mk()
}

func mode(hdr *tar.Header) fs.FileMode {
	return hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func (x *extractor) file(full string, hdr *tar.Header, r io.Reader) error {
	var f *os.File
	err := x.create(full, func() (err error) {
		f, err = os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		return err
	})
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(f, r, x.buf); err != nil {
		f.Close()
		return err
	}
	// chmod after chown: chown clears the setuid and setgid bits.
	if x.chown {
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Chmod(mode(hdr)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return x.times(full, hdr.ModTime)
}

func (x *extractor) dir(rel, full string, hdr *tar.Header) error {
	if rel == "" {
		return nil
	}
	err := os.Mkdir(full, 0o700)
	if errors.Is(err, fs.ErrExist) {
		st, lerr := os.Lstat(full)
		switch {
		case lerr != nil:
			return lerr
		case !st.IsDir():
			// A file or symlink left from before: replace it.
			if err := os.Remove(full); err != nil {
				return err
			}
			err = os.Mkdir(full, 0o700)
		default:
			err = nil
		}
	}
	if err != nil {
		return err
	}
	x.dirs[rel] = true
	x.meta = append(x.meta, dirMeta{path: full, mode: mode(hdr), mtime: hdr.ModTime, uid: hdr.Uid, gid: hdr.Gid})
	return nil
}

func (x *extractor) symlink(rel, full string, hdr *tar.Header) error {
	target := hdr.Linkname
	if target == "" {
		return unsafe("symlink with an empty target")
	}
	if !strings.HasPrefix(target, "/") {
		resolved := path.Join(path.Dir(rel), target)
		if resolved == ".." || strings.HasPrefix(resolved, "../") {
			return unsafe("symlink target %q leads outside the root", target)
		}
	}
	if err := x.create(full, func() error { return os.Symlink(target, full) }); err != nil {
		return err
	}
	return x.attrs(full, hdr, false)
}

func (x *extractor) hardlink(full string, hdr *tar.Header) error {
	target, skip, err := x.relPath(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if skip {
		return unsafe("hard link target %q is stripped away", hdr.Linkname)
	}
	if err := x.parents(target, false); err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	targetFull := filepath.Join(x.root, target)
	st, err := os.Lstat(targetFull)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if !st.Mode().IsRegular() {
		return unsafe("hard link target %q is not a regular file", hdr.Linkname)
	}
	return x.create(full, func() error { return os.Link(targetFull, full) })
}

// attrs sets ownership and times on a symlink or FIFO without following it.
func (x *extractor) attrs(full string, hdr *tar.Header, chmod bool) error {
	if x.chown {
		if err := os.Lchown(full, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if chmod {
		if err := os.Chmod(full, mode(hdr)); err != nil {
			return err
		}
	}
	return x.times(full, hdr.ModTime)
}

func (x *extractor) times(full string, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	ts := unix.NsecToTimespec(mtime.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, full, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// finishDirs applies directory modes and times once every entry is written;
// changing a directory's metadata does not touch its parent's mtime, so the
// order does not matter.
func (x *extractor) finishDirs() error {
	for i := len(x.meta) - 1; i >= 0; i-- {
		m := x.meta[i]
		if x.chown {
			if err := os.Lchown(m.path, m.uid, m.gid); err != nil {
				return err
			}
		}
		if err := os.Chmod(m.path, m.mode); err != nil {
			return err
		}
		if err := x.times(m.path, m.mtime); err != nil {
			return err
		}
	}
	return nil
}
