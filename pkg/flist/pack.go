package flist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/internal/procs"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// ErrUpload is wrapped by the error Pack returns when blobs could not be
// stored; errors.As finds the *UploadError naming the files.
var ErrUpload = errors.New("upload failed")

// Defaults of PackOptions.
const (
	DefaultParallel   = 16
	DefaultRetries    = 4
	DefaultRetryDelay = 250 * time.Millisecond
	maxRetryDelay     = 5 * time.Second
)

// PackOptions configure Pack. Only Store is required.
type PackOptions struct {
	// Store receives the blobs, e.g. store.Parse("00-7f=dir:///a,80-ff=s3://...").
	Store store.Store
	// RouteOverride, when not empty, is written as the flist's route table
	// instead of the routes of Store, verbatim (credentials included on
	// purpose): the runtime route nodes read from, typically read-only keys
	// on a gateway (store.S3Config.RouteURL).
	RouteOverride []store.Route
	// KeepPassword writes the Store's route URLs with their passwords
	// (rfs --no-strip-password). By default the password is stripped and
	// the user name kept.
	KeepPassword bool
	// Parallel is the number of blocks encoded and uploaded at once (also
	// the bound on concurrent store requests); default DefaultParallel. A
	// local store (store.IsLocal: dir://) gets at most one per CPU: its
	// writes cost CPU rather than waiting, and more workers than CPUs
	// only take turns on them, evicting each other's chunks from the
	// caches (README, "Flist packing"). When those writes wait for a
	// disk, each worker stores one blob while it encodes the next.
	Parallel int
	// NoReuse reads and encodes every file. By default a file whose path,
	// size, mode, mtime and ctime equal those recorded in the flist already
	// at the output path (or, with ReuseIndex, in that index) takes its
	// blocks from there, after checking that the store has them, so packing
	// an unchanged tree costs little more than a walk.
	NoReuse bool
	// Time, when set (SOURCE_DATE_EPOCH), is every inode's mtime and
	// ctime, so the same tree content gives the same flist whenever and
	// wherever its files were written (the flists are embedded in the
	// image). A previous flist's times then no longer tell whether a file
	// changed: reuse needs ReuseIndex.
	Time *int64
	// ReuseIndex, when set, is the file that records, for the next pack,
	// each file's identity on disk (device, inode, size, mode, mtime and
	// ctime in nanoseconds) and its blocks; reuse then compares against it
	// instead of the previous flist. Keep it with the build's state, not
	// with the flist: it names the work tree's inodes. A missing, stale or
	// corrupt index only means every file is read.
	ReuseIndex string
	// Retries is how often a failed store request is retried
	// (store.NewRetry: exponential backoff starting at RetryDelay, each
	// attempt bounded by store.DefaultAttemptTimeout); 0 means
	// DefaultRetries, negative means none. What a retry cannot fix
	// (store.Permanent: refused credentials, no bucket...) is not retried.
	Retries    int
	RetryDelay time.Duration
	// Progress, when not nil, reports bytes read, files, and blobs uploaded
	// and skipped through pkg/progress.
	Progress *progress.Options
	// Log receives warnings (renamed non-UTF-8 names) and retries; nil is silent.
	Log logrus.FieldLogger
}

// Stats summarize a pack.
type Stats struct {
	Flist                         string // the flist written
	FlistBytes                    int64  // its size
	Files, Dirs, Symlinks, Others int
	Bytes                         uint64 // bytes in regular files
	Blocks                        int    // block rows written
	Reused                        int    // files whose blocks came from the previous flist
	Uploaded                      int    // distinct blobs uploaded
	Skipped                       int    // distinct blobs the store already had
	UploadedBytes                 int64  // size of the uploaded blobs
	Duration                      time.Duration
}

// MBps is the pack's throughput: bytes of regular files per second, in MB.
func (s Stats) MBps() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Bytes) / 1e6 / s.Duration.Seconds()
}

// String is the one-line summary a pack ends with: the flist and its size,
// the files and their bytes, the blobs uploaded and those the store
// already had, and the throughput.
func (s Stats) String() string {
	return fmt.Sprintf("%s (%s): %d files (%s, %d unchanged), %d dirs, %d symlinks, %d other; "+
		"%d blobs new (%s), %d already in the store; %.1f MB/s in %s",
		s.Flist, humanize.Bytes(uint64(s.FlistBytes)), s.Files, humanize.Bytes(s.Bytes), s.Reused, s.Dirs, s.Symlinks, s.Others,
		s.Uploaded, humanize.Bytes(uint64(s.UploadedBytes)), s.Skipped, s.MBps(), s.Duration.Round(time.Millisecond))
}

// UploadError names the files whose blobs could not be stored.
type UploadError struct {
	Files []string // paths of the failed files
	Err   error    // the first failure
}

// Error names up to five files and the first failure.
func (e *UploadError) Error() string {
	names := e.Files
	more := ""
	if len(names) > 5 {
		names, more = names[:5], fmt.Sprintf(" and %d more", len(e.Files)-5)
	}
	return fmt.Sprintf("%s for %d file(s) (%s%s): %s", ErrUpload, len(e.Files), strings.Join(names, ", "), more, e.Err)
}

// Unwrap lets errors.Is find ErrUpload and the store's sentinel errors.
func (e *UploadError) Unwrap() []error { return []error{ErrUpload, e.Err} }

// Pack writes an flist of the tree at srcDir to outFL and stores the blobs of
// its regular files in opt.Store, as `rfs pack` does, with these differences:
// inodes are numbered in rfs's walk order but children are taken in name
// order (rfs uses directory order), so the same tree gives the same flist;
// blocks of large files are encoded in parallel; blobs the store already has
// are not uploaded again, and unchanged files are not even read again (see
// PackOptions.NoReuse); a chunk that repeats is encoded once; store errors
// are retried; and the flist is written under a temporary name and renamed
// when complete, after the store has made the blobs durable (store.Syncer),
// so a failed pack leaves no flist at outFL (a previous one there is
// removed, since it no longer describes the tree) and a committed flist
// never names a blob a crash could lose. The finished flist's mtime is the
// time the walk started, which is what lets the next pack trust it.
func Pack(ctx context.Context, srcDir, outFL string, opt PackOptions) (Stats, error) {
	if opt.Store == nil {
		return Stats{}, errors.New("pack: no store given")
	}
	return newPacker(opt).packTo(ctx, srcDir, outFL)
}

func (p *packer) packTo(ctx context.Context, srcDir, outFL string) (Stats, error) {
	start := time.Now()
	err := p.run(ctx, srcDir, outFL)
	p.stats.Duration = time.Since(start)
	if err != nil {
		_ = os.Remove(outFL)
		return p.snapshot(), fmt.Errorf("pack %s into %s: %w", srcDir, outFL, err)
	}
	stats := p.snapshot()
	stats.Flist = outFL
	if st, err := os.Stat(outFL); err == nil {
		stats.FlistBytes = st.Size()
	}
	return stats, nil
}

type packer struct {
	opt   PackOptions
	store store.Store // opt.Store, its failed requests retried (opt.Retries, opt.RetryDelay)
	log   logrus.FieldLogger
	stats Stats // walk counters, written by the walk
	// writeBehind: each worker stores a blob on a goroutine of its own
	// while it encodes the next (see worker).
	writeBehind bool

	prev     map[string]prevFile // regular files of the previous pack (its flist or ReuseIndex), by path
	prevWalk int64               // the second its walk started in, in the unit of the stamps' times
	files    []*fileState        // the files of this pack, in walk order, once it succeeded
	known    map[string]bool     // blob (hex id) -> in the store, settled in bulk before the reuse checks

	walkTime time.Duration
	cancel   context.CancelFunc
	chunks   *chunkPool
	bar      *progress.Bar

	blocks, uploaded, skipped, filesDone, reused atomic.Int64
	uploadedBytes                                atomic.Int64
	seen                                         sync.Map // [HashSize]byte -> struct{}: blob ids handled by this pack
	ids                                          sync.Map // [HashSize]byte key -> id of the chunks encoded by this pack

	mu       sync.Mutex
	failed   []string
	firstErr error
}

func newPacker(opt PackOptions) *packer {
	if opt.Parallel <= 0 {
		opt.Parallel = DefaultParallel
	}
	local, waits := store.IsLocal(opt.Store)
	if local {
		opt.Parallel = min(opt.Parallel, procs.CPUs())
	}
	if opt.Retries == 0 {
		opt.Retries = DefaultRetries
	}
	if opt.RetryDelay <= 0 {
		opt.RetryDelay = DefaultRetryDelay
	}
	log := logging.OrDiscard(opt.Log)
	retried := store.NewRetry(opt.Store, store.RetryOptions{
		Attempts: max(opt.Retries, 0) + 1, Backoff: opt.RetryDelay, MaxBackoff: maxRetryDelay,
		OnRetry: func(op string, id []byte, attempt int, wait time.Duration, err error) {
			log.WithField("blob", store.Hex(id)).Debugf("%s failed (attempt %d), retrying in %s: %v", op, attempt, wait, err)
		},
	})
	return &packer{opt: opt, store: retried, log: log, chunks: newChunkPool(opt.Parallel), writeBehind: local && waits}
}

func (p *packer) snapshot() Stats {
	s := p.stats
	s.Blocks = int(p.blocks.Load())
	s.Uploaded = int(p.uploaded.Load())
	s.Skipped = int(p.skipped.Load())
	s.Reused = int(p.reused.Load())
	s.UploadedBytes = p.uploadedBytes.Load()
	return s
}

// fileJob is a regular file whose blocks are still to be written.
type fileJob struct {
	ino   int64
	path  string    // on disk
	fpath string    // in the flist
	in    Inode     // as recorded
	stamp fileStamp // as stat'ed (diskStamp)
}

// run does the pack. The flist is written under a temporary name; a
// failure leaves nothing of it.
func (p *packer) run(ctx context.Context, srcDir, outFL string) error {
	srcDir = filepath.Clean(srcDir)
	var root unix.Stat_t
	if err := unix.Stat(srcDir, &root); err != nil {
		return fmt.Errorf("stat source: %w", &os.PathError{Op: "stat", Path: srcDir, Err: err})
	}
	if root.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("source %s is not a directory", srcDir)
	}
	// The flist is a record: synced, and committed only after the blobs it
	// names are durable (fsutil's rule). Its mtime is when the walk starts.
	walkStart := time.Now()
	out, err := fsutil.Create(outFL, 0o644, fsutil.Sync(), fsutil.ModTime(walkStart))
	if err != nil {
		return err
	}
	defer out.Cleanup()
	tmp := out.Name()
	defer os.Remove(tmp + "-journal") // left by a failed transaction
	w, err := Create(tmp)
	if err != nil {
		return err
	}
	defer w.Close()
	if err := p.writeRoutes(w); err != nil {
		return err
	}
	var outDir unix.Stat_t
	if err := unix.Stat(filepath.Dir(outFL), &outDir); err != nil {
		return err
	}
	skip := outFiles{dev: outDir.Dev, ino: outDir.Ino, names: map[string]bool{
		filepath.Base(outFL): true, filepath.Base(tmp): true, filepath.Base(tmp) + "-journal": true}}
	if err := p.pack(ctx, w, srcDir, outFL, &root, skip); err != nil {
		return err
	}
	packed := time.Now()
	// The flist names the blobs only once they are durable (store.Syncer).
	if err := store.Sync(ctx, p.opt.Store); err != nil {
		return err
	}
	synced := time.Now()
	if err := w.Commit(); err != nil {
		return err
	}
	if p.prev != nil && sameFlist(tmp, outFL) {
		// An unchanged tree: the flist there, durable already, has these
		// very bytes. Only its mtime moves, to this walk.
		out.Cleanup()
		if err := os.Chtimes(outFL, walkStart, walkStart); err != nil {
			return err
		}
	} else if err := out.Commit(); err != nil {
		return err
	}
	if p.opt.ReuseIndex != "" {
		// Only an optimisation: a pack that cannot record it still succeeded.
		if err := writeReuseIndex(p.opt.ReuseIndex, walkStart.UnixNano(), p.files); err != nil {
			p.log.WithError(err).Warn("the next pack will read every file again")
		}
	}
	p.log.Debugf("pack phases: walk %s (in parallel with the blocks), blocks %s, store sync %s, flist commit %s",
		p.walkTime, packed.Sub(walkStart), synced.Sub(packed), time.Since(synced))
	return nil
}

func (p *packer) writeRoutes(w *Writer) error {
	routes := p.opt.RouteOverride
	if len(routes) == 0 {
		for _, r := range p.opt.Store.Routes() {
			if !p.opt.KeepPassword {
				u, err := store.StripPassword(r.URL)
				if err != nil {
					return err
				}
				r.URL = u
			}
			routes = append(routes, r)
		}
	}
	for _, r := range routes {
		if err := w.AddRoute(r); err != nil {
			return err
		}
	}
	return nil
}

// sameFlist reports whether the regular file at old has mode 0644 and the
// bytes of the new flist at tmp.
func sameFlist(tmp, old string) bool {
	a, err := os.Open(tmp)
	if err != nil {
		return false
	}
	defer a.Close()
	b, err := os.OpenFile(old, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer b.Close()
	as, aerr := a.Stat()
	bs, berr := b.Stat()
	if aerr != nil || berr != nil || !bs.Mode().IsRegular() || bs.Mode().Perm() != 0o644 || as.Size() != bs.Size() {
		return false
	}
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		n, errA := io.ReadFull(a, bufA)
		m, errB := io.ReadFull(b, bufB)
		if n != m || !bytes.Equal(bufA[:n], bufB[:m]) {
			return false
		}
		if errA != nil || errB != nil {
			end := func(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }
			return end(errA) && end(errB)
		}
	}
}

// outFiles are the files of the flist being written (the output, its
// temporary and the temporary's journal), which the walk leaves out when
// they lie inside the tree: the directory they are in, by identity, and
// their names.
type outFiles struct {
	dev, ino uint64
	names    map[string]bool
}

func (o outFiles) has(dir *unix.Stat_t, name string) bool {
	return dir.Dev == o.dev && dir.Ino == o.ino && o.names[name]
}

// walk inserts every inode in rfs's order (see Reader.Walk) and hands each
// regular file to found. A directory is read through a descriptor that is
// checked to be the directory stat'ed, and its entries are stat'ed
// relative to it, so no path is resolved again per entry and a directory
// swapped for a symlink during the walk is refused.
func (p *packer) walk(ctx context.Context, w *Writer, srcDir string, root *unix.Stat_t, out outFiles, found func(fileJob)) error {
	type dirItem struct {
		parent int64
		path   string // on disk
		fpath  string // in the flist
		name   string
		st     unix.Stat_t
	}
	list := []dirItem{{0, srcDir, "/", "/", *root}}
	buf := make([]byte, 64<<10)
	for len(list) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := list[len(list)-1]
		list = list[:len(list)-1]
		ino, err := w.AddInode(p.inode(d.parent, d.name, &d.st, nil))
		if err != nil {
			return err
		}
		p.stats.Dirs++
		fd, names, err := readDir(d.path, &d.st, d.parent == 0, buf)
		if err != nil {
			return fmt.Errorf("walk: %w", err)
		}
		for _, name := range names {
			if out.has(&d.st, name) {
				continue
			}
			path := diskPath(d.path, name)
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				unix.Close(fd)
				return fmt.Errorf("walk: %w", &os.PathError{Op: "lstat", Path: path, Err: err})
			}
			name = p.textName(path, name)
			fpath := joinPath(d.fpath, name)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				list = append(list, dirItem{ino, path, fpath, name, st})
				continue
			}
			var data []byte
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				if data, err = readlinkat(fd, name, buf); err != nil {
					unix.Close(fd)
					return fmt.Errorf("walk: %w", &os.PathError{Op: "readlink", Path: path, Err: err})
				}
			}
			in := p.inode(ino, name, &st, data)
			child, err := w.AddInode(in)
			if err != nil {
				unix.Close(fd)
				return err
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				p.stats.Files++
				p.stats.Bytes += uint64(st.Size)
				found(fileJob{ino: child, path: path, fpath: fpath, in: in, stamp: diskStamp(&st)})
			case unix.S_IFLNK:
				p.stats.Symlinks++
			default:
				p.stats.Others++
			}
		}
		unix.Close(fd)
	}
	return nil
}

// readDir opens the directory at path, checks that it is the directory st
// describes, and returns the descriptor and the sorted names of its
// entries. Only the root (the source as given) may be reached through a
// symlink. buf is scratch space.
func readDir(path string, st *unix.Stat_t, root bool, buf []byte) (int, []string, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if !root {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		return -1, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var names []string
	var got unix.Stat_t
	if err = unix.Fstat(fd, &got); err == nil && (got.Dev != st.Dev || got.Ino != st.Ino) {
		err = errors.New("replaced during the walk")
	}
	for err == nil {
		var n int
		if n, err = unix.ReadDirent(fd, buf); n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	if err != nil {
		unix.Close(fd)
		return -1, nil, &os.PathError{Op: "read directory", Path: path, Err: err}
	}
	sort.Strings(names)
	return fd, names, nil
}

// readlinkat returns the target of the symlink name in directory dirfd.
func readlinkat(dirfd int, name string, buf []byte) ([]byte, error) {
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return nil, err
		}
		if n < len(buf) {
			return bytes.Clone(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf)) // truncated: try again with more room
	}
}

// diskPath joins a directory path of the walk and an entry name.
func diskPath(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// textName makes a name valid UTF-8 the way rfs does (from_utf8_lossy):
// the name column is TEXT and rfs's reader rejects other bytes.
func (p *packer) textName(path, name string) string {
	if utf8.ValidString(name) {
		return name
	}
	fixed := strings.ToValidUTF8(name, "\uFFFD")
	p.log.WithField("path", path).Warnf("name is not UTF-8; recorded as %q", fixed)
	return fixed
}

// inode describes a file for the flist, with the fixed time when set.
func (p *packer) inode(parent int64, name string, st *unix.Stat_t, data []byte) Inode {
	in := inodeOf(parent, name, st, data)
	if t := p.opt.Time; t != nil {
		in.Mtime, in.Ctime = *t, *t
	}
	return in
}

func inodeOf(parent int64, name string, st *unix.Stat_t, data []byte) Inode {
	return Inode{
		Parent: parent,
		Name:   name,
		Size:   uint64(st.Size),
		UID:    st.Uid,
		GID:    st.Gid,
		Mode:   st.Mode,
		Rdev:   st.Rdev,
		Ctime:  st.Ctim.Sec,
		Mtime:  st.Mtim.Sec,
		Data:   data,
	}
}
