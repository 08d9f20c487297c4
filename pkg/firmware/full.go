package firmware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/alpine"
	"github.com/threefoldtech/zosbuilder/pkg/download"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
)

// DefaultRepositories are the repositories FullSet reads: those an Alpine
// system's /etc/apk/repositories lists (alpine.Configure writes them).
// Alpine keeps every linux-firmware package in main; community is read so
// that one moved there would not be missed.
var DefaultRepositories = []string{"main", "community"}

// DefaultJobs is how many packages FullSet downloads and unpacks at once.
const DefaultJobs = 4

// IsFirmwarePackage reports whether an Alpine package belongs to the full
// firmware set: linux-firmware (the meta package) and linux-firmware-*.
func IsFirmwarePackage(name string) bool {
	return name == "linux-firmware" || strings.HasPrefix(name, PackagePrefix)
}

// FullOptions configure FullSet.
type FullOptions struct {
	// Source names the mirror, release and architecture (ALPINE_MIRROR,
	// ALPINE_VERSION, ALPINE_ARCH).
	Source alpine.Source
	// Repositories to list packages from; nil means DefaultRepositories. A
	// package listed by two keeps the first repository's.
	Repositories []string
	// Keys verify the indexes and packages (alpine.TrustedKeys).
	Keys alpine.Keyring
	// Fetcher downloads the indexes and packages.
	Fetcher *download.Fetcher
	// Dir keeps the verified, extracted packages and the assembled tree
	// between builds, e.g. CACHE_DIR/linux-firmware.
	Dir string
	// Overlay is FIRMWARE_DIR: its files are added to the tree, and replace
	// a package's file of the same path ("" for none).
	Overlay string
	// Jobs is how many packages are fetched and unpacked at once;
	// 0 means DefaultJobs.
	Jobs int
	// Progress, when set, shows the packages done.
	Progress *progress.Options
	Log      logrus.FieldLogger
}

// Full is the assembled full firmware set.
type Full struct {
	// Tree is the directory the firmware flist packs: the content of
	// /lib/firmware with every package and the overlay.
	Tree string
	// Packages are the linux-firmware* index entries, by name.
	Packages []alpine.IndexEntry
	// Owners names the package of each file and symlink of Tree (by path
	// relative to it); files from the overlay have none.
	Owners map[string]string
	// Fetched counts the packages downloaded and unpacked by this call;
	// the others were unpacked by an earlier one.
	Fetched int
	// Files and Bytes count the tree's regular files and their size;
	// Symlinks its symlinks; Overlaid the files that came from Overlay.
	Files, Symlinks, Overlaid int
	Bytes                     int64
	// Download, Verify and Extract add up the time spent on each step over
	// the fetched packages (they overlap across Jobs); Assemble is the
	// time to build the tree; Duration is the whole call.
	Download, Verify, Extract, Assemble, Duration time.Duration
}

// String is a one-line summary.
func (f Full) String() string {
	var installed int64
	for _, p := range f.Packages {
		installed += p.InstalledSize
	}
	return fmt.Sprintf("%d linux-firmware packages (%d fetched: download %s, verify %s, extract %s; %s installed per the index), "+
		"tree of %d files (%s, %d from FIRMWARE_DIR) and %d symlinks assembled in %s; %s in all",
		len(f.Packages), f.Fetched, f.Download.Round(time.Millisecond), f.Verify.Round(time.Millisecond), f.Extract.Round(time.Millisecond),
		humanize.IBytes(uint64(installed)), f.Files, humanize.IBytes(uint64(f.Bytes)), f.Overlaid, f.Symlinks,
		f.Assemble.Round(time.Millisecond), f.Duration.Round(time.Millisecond))
}

// FullSet assembles the full firmware set the original packs into the
// firmware flist since 2025-09 (rfs_common_install_all_alpine_firmware_
// packages): every linux-firmware* package the repositories' signed
// indexes list is downloaded, verified (alpine.OpenPackage: the index's
// signature, the package's signature, its control checksum and data hash)
// and extracted safely; the union of their /lib/firmware trees, with
// Overlay's files on top, is the returned Tree.
//
// Dir/<release>/packages keeps one verified, extracted tree per package,
// named by its checksum: an unchanged package is neither downloaded nor
// extracted again, and its downloaded .apk is dropped once extracted.
// Dir/<release>/tree is updated in place (hard links into the package
// trees, copies of the overlay's files), so an unchanged set leaves it as
// it was and a re-pack reads no file again. Package trees no longer listed
// are removed once the tree is assembled.
func FullSet(ctx context.Context, opt FullOptions) (Full, error) {
	start := time.Now()
	if opt.Fetcher == nil || opt.Dir == "" {
		return Full{}, errors.New("full firmware set: no fetcher or directory")
	}
	if opt.Jobs <= 0 {
		opt.Jobs = DefaultJobs
	}
	if opt.Log == nil {
		l := logrus.New()
		l.Out = io.Discard
		opt.Log = l
	}
	repos := opt.Repositories
	if repos == nil {
		repos = DefaultRepositories
	}
	var pkgs []alpine.IndexEntry
	seen := map[string]bool{}
	for _, repo := range repos {
		url := opt.Source.RepositoryArchURL(repo)
		entries, err := alpine.FetchIndex(ctx, opt.Fetcher, url, opt.Keys)
		if err != nil {
			return Full{}, fmt.Errorf("full firmware set: %w", err)
		}
		for _, e := range entries {
			if IsFirmwarePackage(e.Name) && !seen[e.Name] {
				seen[e.Name] = true
				pkgs = append(pkgs, e)
			}
		}
	}
	if len(pkgs) == 0 {
		return Full{}, fmt.Errorf("full firmware set: no linux-firmware package in the %s repositories of %s", strings.Join(repos, " and "),
			redact.MaskURL(opt.Source.RepositoryArchURL("*")))
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })

	base := filepath.Join(opt.Dir, releaseKey(opt.Source))
	full := Full{Tree: filepath.Join(base, "tree"), Packages: pkgs}
	dirs, err := full.unpack(ctx, opt, filepath.Join(base, "packages"))
	if err != nil {
		return Full{}, fmt.Errorf("full firmware set: %w", err)
	}
	t0 := time.Now()
	want, err := full.plan(dirs, opt)
	if err != nil {
		return Full{}, fmt.Errorf("full firmware set: %w", err)
	}
	changed, err := syncTree(full.Tree, want)
	if err != nil {
		return Full{}, fmt.Errorf("full firmware set: assemble %s: %w", full.Tree, err)
	}
	if err := prune(filepath.Join(base, "packages"), dirs); err != nil {
		return Full{}, fmt.Errorf("full firmware set: %w", err)
	}
	full.Assemble = time.Since(t0)
	if changed {
		// flist.Pack trusts a file's times only when they are older than
		// the second its previous walk started: a pack starting in the
		// second the tree changed would make the next pack read every file
		// again.
		select {
		case <-time.After(time.Until(time.Now().Truncate(time.Second).Add(time.Second))):
		case <-ctx.Done():
			return Full{}, ctx.Err()
		}
	}
	full.Duration = time.Since(start)
	return full, nil
}

// releaseKey names the cache of one mirror, release and architecture:
// v3.22-x86_64-<hash of the mirror URL>.
func releaseKey(s alpine.Source) string {
	h := sha256.Sum256([]byte(s.Mirror))
	return fmt.Sprintf("v%s-%s-%s", strings.TrimPrefix(s.Version, "v"), s.Architecture(), hex.EncodeToString(h[:4]))
}

// packageDir is the name of a package's extracted tree: its name, version
// and checksum, so a rebuilt package (same version, other content) is a
// new tree.
func packageDir(e alpine.IndexEntry) string {
	return fmt.Sprintf("%s-%s-%s", e.Name, e.Version, hex.EncodeToString(e.Checksum[:8]))
}

// unpack makes sure every package has its verified tree under dir and
// returns the trees, in package order.
func (f *Full) unpack(ctx context.Context, opt FullOptions, dir string) ([]string, error) {
	dirs := make([]string, len(f.Packages))
	var todo []int
	for i, p := range f.Packages {
		if _, err := p.FileName(); err != nil {
			return nil, err
		}
		dirs[i] = filepath.Join(dir, packageDir(p))
		if st, err := os.Stat(dirs[i]); err == nil && st.IsDir() {
			continue
		}
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return dirs, nil
	}
	var bar *progress.Bar
	if opt.Progress != nil {
		bar = progress.Start("firmware packages", int64(len(todo)), progress.Count, *opt.Progress)
		defer bar.Finish()
	}
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(opt.Jobs, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t, err := fetchPackage(ctx, opt, f.Packages[i], dirs[i])
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", f.Packages[i].Name, err)
				}
				f.Download += t.download
				f.Verify += t.verify
				f.Extract += t.extract
				f.Fetched++
				mu.Unlock()
				if bar != nil {
					bar.Add(1)
				}
			}
		}()
	}
	for _, i := range todo {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return dirs, firstErr
}

type stepTimes struct{ download, verify, extract time.Duration }

// fetchPackage downloads one package, verifies it and extracts it to dest.
func fetchPackage(ctx context.Context, opt FullOptions, p alpine.IndexEntry, dest string) (stepTimes, error) {
	var t stepTimes
	url, err := p.URL()
	if err != nil {
		return t, err
	}
	t0 := time.Now()
	apk, err := opt.Fetcher.File(ctx, url, "")
	t.download = time.Since(t0)
	if err != nil {
		return t, err
	}
	// Once extracted (or refused), the .apk is not needed any more: the
	// verified tree is the cache.
	defer opt.Fetcher.Discard(apk)
	fh, err := os.Open(apk)
	if err != nil {
		return t, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return t, err
	}
	t0 = time.Now()
	vp, err := alpine.OpenPackage(fh, st.Size(), p, opt.Keys)
	t.verify = time.Since(t0)
	if err != nil {
		return t, fmt.Errorf("%s: %w", redact.MaskURL(url), err)
	}
	t0 = time.Now()
	err = vp.Extract(ctx, dest, alpine.PackageExtractOptions{Log: opt.Log})
	t.extract = time.Since(t0)
	return t, err
}

// entry is one path of the assembled tree and where it comes from.
type entry struct {
	kind    fs.FileMode // 0 (regular file), fs.ModeDir or fs.ModeSymlink
	src     string      // the file to link or copy
	target  string      // a symlink's target
	overlay bool        // copied from the overlay rather than linked
}

// firmwareRoots are where packages keep firmware: /lib/firmware, and
// /usr/lib/firmware should Alpine merge /usr.
var firmwareRoots = []string{"lib/firmware", "usr/lib/firmware"}

// plan lists the tree: the packages' firmware in name order (a path two
// packages hold keeps the first and is reported), then the overlay's files
// over them.
func (f *Full) plan(dirs []string, opt FullOptions) (map[string]entry, error) {
	want := map[string]entry{}
	owner := map[string]string{}
	for i, dir := range dirs {
		name := f.Packages[i].Name
		for _, root := range firmwareRoots {
			src := filepath.Join(dir, root)
			if st, err := os.Lstat(src); err != nil || !st.IsDir() {
				continue
			}
			err := walkTree(src, func(rel string, e entry) error {
				if prev, ok := want[rel]; ok {
					if prev.kind != e.kind || e.kind == 0 || prev.target != e.target {
						opt.Log.Warnf("firmware %s is in %s and %s; keeping %s's", rel, owner[rel], name, owner[rel])
					}
					return nil
				}
				want[rel], owner[rel] = e, name
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if err := f.overlay(want, owner, opt.Overlay); err != nil {
		return nil, fmt.Errorf("FIRMWARE_DIR: %w", err)
	}
	f.Owners = map[string]string{}
	for rel, e := range want {
		if e.kind != fs.ModeDir && !e.overlay {
			f.Owners[rel] = owner[rel]
		}
	}
	for _, e := range want {
		switch e.kind {
		case 0:
			f.Files++
			if st, err := os.Stat(e.src); err == nil {
				f.Bytes += st.Size()
			}
		case fs.ModeSymlink:
			f.Symlinks++
		}
	}
	return want, nil
}

// overlay puts the files of dir (FIRMWARE_DIR) over the packages' in want.
func (f *Full) overlay(want map[string]entry, owner map[string]string, dir string) error {
	if dir == "" {
		return nil
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return walkTree(dir, func(rel string, e entry) error {
		if e.kind == 0 && isPlaceholder(rel) {
			return nil
		}
		prev, ok := want[rel]
		switch {
		case ok && prev.kind == fs.ModeDir && e.kind != fs.ModeDir:
			return fmt.Errorf("%s is a file in %s, but a folder in package %s", rel, dir, owner[rel])
		case ok && prev.kind != fs.ModeDir && e.kind == fs.ModeDir:
			return fmt.Errorf("%s is a folder in %s, but a file in package %s", rel, dir, owner[rel])
		case e.kind == fs.ModeSymlink && escapes(rel, e.target):
			return fmt.Errorf("symlink %s -> %s in %s leaves the firmware folder", rel, e.target, dir)
		}
		if e.kind != fs.ModeDir {
			e.overlay = true
			f.Overlaid++
		}
		want[rel] = e
		return nil
	})
}

// isPlaceholder is a file that keeps a folder in git (README.md,
// .gitkeep); HasFiles ignores them too.
func isPlaceholder(rel string) bool {
	b := filepath.Base(rel)
	return b == "README.md" || b == ".gitkeep"
}

// escapes reports whether a relative symlink at rel climbs out of the tree;
// absolute targets are kept as they are (they resolve on the node).
func escapes(rel, target string) bool {
	if filepath.IsAbs(target) {
		return false
	}
	r := filepath.Join(filepath.Dir(rel), target)
	return r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator))
}

// walkTree calls fn for every directory, regular file and symlink under
// root (not root itself), with its path relative to root; anything else
// is an error.
func walkTree(root string, fn func(rel string, e entry) error) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		switch t := d.Type(); {
		case t.IsDir():
			return fn(rel, entry{kind: fs.ModeDir})
		case t.IsRegular():
			return fn(rel, entry{src: p})
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return fn(rel, entry{kind: fs.ModeSymlink, target: target})
		}
		return fmt.Errorf("%s: not a regular file, directory or symlink", p)
	})
}

// syncTree makes dir hold exactly want, touching only what differs: a
// package file already linked there, an overlay copy with the same size and
// mtime, a symlink with the same target are left alone, so an unchanged
// set keeps every inode (and its ctime) as it was.
func syncTree(dir string, want map[string]entry) (changed bool, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	// Remove what is not wanted, or not as wanted, deepest first.
	var stale []string
	err = walkTree(dir, func(rel string, have entry) error {
		w, ok := want[rel]
		if !ok || w.kind != have.kind || !same(filepath.Join(dir, rel), have, w) {
			stale = append(stale, rel)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(stale)))
	for _, rel := range stale {
		if err := os.RemoveAll(filepath.Join(dir, rel)); err != nil {
			return false, err
		}
	}
	changed = len(stale) > 0
	rels := make([]string, 0, len(want))
	for rel := range want {
		rels = append(rels, rel)
	}
	sort.Strings(rels) // parents first
	for _, rel := range rels {
		w, dst := want[rel], filepath.Join(dir, rel)
		if _, err := os.Lstat(dst); err == nil {
			continue // kept above: already as wanted
		}
		changed = true
		switch {
		case w.kind == fs.ModeDir:
			err = os.Mkdir(dst, 0o755)
		case w.kind == fs.ModeSymlink:
			err = os.Symlink(w.target, dst)
		case w.overlay:
			err = copyKeepTime(w.src, dst)
		default:
			err = os.Link(w.src, dst)
			if errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EMLINK) {
				err = copyKeepTime(w.src, dst)
			}
		}
		if err != nil {
			return false, err
		}
	}
	return changed, nil
}

// same reports whether the existing path p (of kind have) is what w wants.
func same(p string, have, w entry) bool {
	switch w.kind {
	case fs.ModeDir:
		return true
	case fs.ModeSymlink:
		return have.target == w.target
	}
	a, err1 := os.Stat(p)
	b, err2 := os.Stat(w.src)
	if err1 != nil || err2 != nil {
		return false
	}
	if os.SameFile(a, b) {
		return true
	}
	// A copy (the overlay's, or a package file the tree could not link):
	// same size, mtime and mode, as rsync would judge it.
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode()
}

// copyKeepTime copies src to dst with src's mode and mtime, so the next
// syncTree sees it unchanged.
func copyKeepTime(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := copyFile(src, dst); err != nil {
		return err
	}
	if err := os.Chmod(dst, st.Mode().Perm()); err != nil {
		return err
	}
	return os.Chtimes(dst, st.ModTime(), st.ModTime())
}

// prune removes the package trees under dir that keep is not using (older
// versions).
func prune(dir string, keep []string) error {
	used := map[string]bool{}
	for _, k := range keep {
		used[filepath.Base(k)] = true
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !used[e.Name()] {
			if err := fsutil.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
