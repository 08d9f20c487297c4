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
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/internal/beneath"
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
	rel      string
	mode     uint32
	mtime    time.Time
	uid, gid int
}

// extractor writes entries through directory descriptors (package
// beneath): parents are opened one component at a time without following
// symlinks, entries are created relative to their parent's descriptor, and
// metadata is set on descriptors or with *at calls that do not follow.
type extractor struct {
	root     *beneath.Root
	rootPath string
	opt      Options
	log      logrus.FieldLogger
	chown    bool
	// seen holds the relative paths written by this archive and whether
	// each is a directory.
	seen    map[string]bool
	meta    []dirMeta
	buf     []byte
	entries int
	devices int
	written int64 // bytes of file content written
	// parent caches the descriptor of the last parent directory: entries
	// come in directory order.
	parentRel string
	parent    *os.File
}

func newExtractor(root string, opt Options) (*extractor, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	r, err := beneath.Open(abs)
	if err != nil {
		return nil, err
	}
	if opt.MaxBytes == 0 {
		opt.MaxBytes = DefaultMaxBytes
	}
	if opt.MaxEntries == 0 {
		opt.MaxEntries = DefaultMaxEntries
	}
	return &extractor{
		root:     r,
		rootPath: abs,
		opt:      opt,
		log:      logging.OrDiscard(opt.Log),
		chown:    opt.Chown && os.Geteuid() == 0,
		seen:     map[string]bool{},
		buf:      make([]byte, 1<<20),
	}, nil
}

// close releases the descriptors.
func (x *extractor) close() {
	if x.parent != nil {
		x.parent.Close()
	}
	x.root.Close()
}

func (x *extractor) run(ctx context.Context, r io.Reader) error {
	defer x.close()
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
		if x.opt.MaxEntries > 0 && x.entries >= x.opt.MaxEntries {
			return fmt.Errorf("entry %q: more than %d entries (Options.MaxEntries): %w", hdr.Name, x.opt.MaxEntries, ErrLimit)
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
	if len(x.rootPath)+1+len(rel) > maxPath {
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
	parentRel, name := beneath.Split(rel)
	parent, err := x.dir(parentRel)
	if err != nil {
		return err
	}
	x.seen[rel] = isDir
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		err = x.file(parent, name, hdr, r)
	case tar.TypeDir:
		err = x.mkdir(parent, rel, name, hdr)
	case tar.TypeSymlink:
		err = x.symlink(parent, rel, name, hdr)
	case tar.TypeLink:
		err = x.hardlink(parent, name, hdr)
	case tar.TypeFifo:
		err = x.create(parent, name, func() error {
			return unix.Mknodat(int(parent.Fd()), name, unix.S_IFIFO|0o600, 0)
		})
		if err == nil {
			err = beneath.SetLeaf(parent, name, x.chown, hdr.Uid, hdr.Gid, true, mode(hdr), hdr.ModTime)
		}
	default:
		x.log.WithField("entry", hdr.Name).Warnf("skipping tar entry of unsupported type %q", hdr.Typeflag)
		delete(x.seen, rel)
	}
	return err
}

// dir returns the descriptor of the directory rel, creating missing
// directories. A component that is a symlink fails the entry, whoever
// created the symlink. The descriptor belongs to the extractor.
func (x *extractor) dir(rel string) (*os.File, error) {
	if x.parent != nil && x.parentRel == rel {
		return x.parent, nil
	}
	d, err := x.root.Dir(rel, true)
	if err != nil {
		return nil, parentErr(err)
	}
	if x.parent != nil {
		x.parent.Close()
	}
	x.parent, x.parentRel = d, rel
	return d, nil
}

// parentErr names a parent that cannot be used; a symlink is unsafe.
func parentErr(err error) error {
	if errors.Is(err, beneath.ErrSymlink) {
		return unsafe("parent %v", err)
	}
	return fmt.Errorf("parent %w", err)
}

// create runs mk, and if the name exists already replaces what is there:
// a file or symlink is removed (never followed), a directory is refused.
func (x *extractor) create(dir *os.File, name string, mk func() error) error {
	err := mk()
	if !errors.Is(err, unix.EEXIST) && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := beneath.RemoveLeaf(dir, name); err != nil {
		if errors.Is(err, beneath.ErrIsDir) {
			return unsafe("would replace an existing directory")
		}
		return err
	}
	return mk()
}

// mode is the permission bits of an entry, setuid, setgid and sticky
// included.
func mode(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

func (x *extractor) file(dir *os.File, name string, hdr *tar.Header, r io.Reader) error {
	// The size is known before anything is written (a sparse entry's is
	// its full, expanded size), so an archive over the limit writes
	// nothing of the entry that crosses it.
	if x.opt.MaxBytes > 0 && hdr.Size > x.opt.MaxBytes-x.written {
		return fmt.Errorf("%d bytes would bring the files to more than %d bytes in total (Options.MaxBytes): %w",
			hdr.Size, x.opt.MaxBytes, ErrLimit)
	}
	var f *os.File
	err := x.create(dir, name, func() (err error) {
		f, err = beneath.Create(dir, name)
		return err
	})
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(f, io.LimitReader(r, hdr.Size), x.buf)
	x.written += n
	if err == nil {
		err = beneath.SetFile(f, x.chown, hdr.Uid, hdr.Gid, mode(hdr), hdr.ModTime)
	}
	return errors.Join(err, f.Close())
}

func (x *extractor) mkdir(parent *os.File, rel, name string, hdr *tar.Header) error {
	mk := func() error { return unix.Mkdirat(int(parent.Fd()), name, 0o700) }
	err := mk()
	if errors.Is(err, unix.EEXIST) {
		st, lerr := beneath.Lstat(parent, name)
		switch {
		case lerr != nil:
			return lerr
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			// A file or symlink left from before: replace it.
			if err := unix.Unlinkat(int(parent.Fd()), name, 0); err != nil {
				return err
			}
			err = mk()
		default:
			err = nil
		}
	}
	if err != nil {
		return err
	}
	x.meta = append(x.meta, dirMeta{rel: rel, mode: mode(hdr), mtime: hdr.ModTime, uid: hdr.Uid, gid: hdr.Gid})
	return nil
}

func (x *extractor) symlink(dir *os.File, rel, name string, hdr *tar.Header) error {
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
	if err := x.create(dir, name, func() error { return unix.Symlinkat(target, int(dir.Fd()), name) }); err != nil {
		return err
	}
	return beneath.SetLeaf(dir, name, x.chown, hdr.Uid, hdr.Gid, false, 0, hdr.ModTime)
}

func (x *extractor) hardlink(dir *os.File, name string, hdr *tar.Header) error {
	target, skip, err := x.relPath(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if skip {
		return unsafe("hard link target %q is stripped away", hdr.Linkname)
	}
	targetDir, targetName := beneath.Split(target)
	td, err := x.root.Dir(targetDir, false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, parentErr(err))
	}
	defer td.Close()
	st, err := beneath.Lstat(td, targetName)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return unsafe("hard link target %q is not a regular file", hdr.Linkname)
	}
	// linkat without AT_SYMLINK_FOLLOW links the name itself.
	return x.create(dir, name, func() error {
		return unix.Linkat(int(td.Fd()), targetName, int(dir.Fd()), name, 0)
	})
}

// finishDirs applies directory owners, modes and times on their
// descriptors once every entry is written; changing a directory's metadata
// does not touch its parent's mtime, so the order does not matter.
func (x *extractor) finishDirs() error {
	for i := len(x.meta) - 1; i >= 0; i-- {
		m := x.meta[i]
		d, err := x.root.Dir(m.rel, false)
		if err != nil {
			return fmt.Errorf("%s: %w", m.rel, err)
		}
		err = beneath.SetFile(d, x.chown, m.uid, m.gid, m.mode, m.mtime)
		if err = errors.Join(err, d.Close()); err != nil {
			return fmt.Errorf("%s: %w", m.rel, err)
		}
	}
	return nil
}
