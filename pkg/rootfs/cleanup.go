package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/elfbin"
)

// CleanupOptions selects what Cleanup does beyond removing files a boot
// image does not need.
type CleanupOptions struct {
	// Strip strips every native ELF file (ENABLE_STRIP): --strip-unneeded
	// for programs and libraries, --strip-debug for kernel modules.
	Strip bool
	// UPX compresses UPXBinaries (in-root paths such as /sbin/zinit) with upx
	// (ENABLE_UPX); skipped with a warning when UPXTool is not installed.
	UPX         bool
	UPXBinaries []string
	// UPXTool is the upx program; "" means "upx" from PATH.
	UPXTool string
	Log     logrus.FieldLogger
}

// CleanupReport says what Cleanup changed.
type CleanupReport struct {
	Removed      []Removal
	RemovedBytes int64
	Stripped     int   // files stripped
	StripSaved   int64 // bytes
	Packed       []Packed
	UPXSaved     int64
	// Skipped lists files left alone by strip or upx, with the reason.
	Skipped []Skip
	// Warnings name steps that could not run (upx not installed).
	Warnings []string
}

// Removal is one path Cleanup deleted.
type Removal struct {
	Path   string // in-root path
	Reason string
	Bytes  int64
}

// Skip is a file strip or upx did not touch.
type Skip struct {
	Path   string
	Reason string
}

// Packed is a binary compressed by upx.
type Packed struct {
	Path          string
	Before, After int64
}

// Cleanup removes what a boot image does not need, then strips and
// compresses binaries as opt asks. Nothing outside root is ever touched:
// removals go through an os.Root, so a symlink in the tree cannot redirect
// them. Running it again on a cleaned tree changes nothing.
func Cleanup(ctx context.Context, root string, opt CleanupOptions) (CleanupReport, error) {
	c := &cleaner{root: root, opt: opt}
	var err error
	if c.r, err = os.OpenRoot(root); err != nil {
		return c.rep, fmt.Errorf("cleanup: %w", err)
	}
	defer c.r.Close()
	steps := []func(context.Context) error{c.removeFixed, c.pruneLocales, c.walk}
	if opt.Strip {
		steps = append(steps, c.strip)
	}
	if opt.UPX {
		steps = append(steps, c.upx)
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return c.rep, err
		}
	}
	slices.SortFunc(c.rep.Removed, func(a, b Removal) int { return strings.Compare(a.Path, b.Path) })
	slices.SortFunc(c.rep.Skipped, func(a, b Skip) int { return strings.Compare(a.Path, b.Path) })
	c.logf(logrus.InfoLevel, "cleanup: removed %d paths (%d bytes), stripped %d files (%d bytes saved), upx saved %d bytes",
		len(c.rep.Removed), c.rep.RemovedBytes, c.rep.Stripped, c.rep.StripSaved, c.rep.UPXSaved)
	return c.rep, nil
}

type cleaner struct {
	root  string
	r     *os.Root
	opt   CleanupOptions
	rep   CleanupReport
	elves []string // in-root paths of ELF files found by walk, for strip
}

func (c *cleaner) logf(level logrus.Level, format string, args ...any) {
	log := logging.OrDiscard(c.opt.Log)
	if level == logrus.WarnLevel {
		log.Warnf(format, args...)
		return
	}
	log.Infof(format, args...)
}

func (c *cleaner) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.rep.Warnings = append(c.rep.Warnings, msg)
	c.logf(logrus.WarnLevel, "%s", msg)
}

// fixedRemovals are whole directories no boot image needs.
func fixedRemovals() []Removal {
	return []Removal{
		{Path: "/usr/share/doc", Reason: "documentation"},
		{Path: "/usr/local/share/doc", Reason: "documentation"},
		{Path: "/usr/share/gtk-doc", Reason: "API documentation"},
		{Path: "/usr/share/man", Reason: "manual pages"},
		{Path: "/usr/local/share/man", Reason: "manual pages"},
		{Path: "/usr/share/info", Reason: "GNU info pages"},
		{Path: "/usr/include", Reason: "C headers: build-time only"},
		{Path: "/usr/local/include", Reason: "C headers: build-time only"},
		{Path: "/usr/lib/pkgconfig", Reason: "pkg-config files: build-time only"},
		{Path: "/usr/share/pkgconfig", Reason: "pkg-config files: build-time only"},
		{Path: "/usr/share/aclocal", Reason: "autoconf macros: build-time only"},
	}
}

func (c *cleaner) removeFixed(ctx context.Context) error {
	for _, rm := range fixedRemovals() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.remove(rm.Path, rm.Reason); err != nil {
			return err
		}
	}
	// The apk cache directory itself stays: apk expects it when configured.
	return c.removeChildren("/var/cache/apk", "apk package cache", func(string) bool { return true })
}

// pruneLocales removes every locale but C and POSIX: the image runs in C.
func (c *cleaner) pruneLocales(ctx context.Context) error {
	keep := func(name string) bool {
		return name == "C" || strings.HasPrefix(name, "C.") || name == "POSIX" || name == "locale.alias"
	}
	for _, dir := range []string{"/usr/share/locale", "/usr/lib/locale", "/usr/share/i18n/locales/musl"} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.removeChildren(dir, "locale other than C", func(n string) bool { return !keep(n) }); err != nil {
			return err
		}
	}
	return nil
}

func (c *cleaner) removeChildren(dir, reason string, match func(string) bool) error {
	f, err := c.r.Open(rootRel(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		c.warn("cleanup: skip %s: %s", dir, err)
		return nil
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("cleanup %s: %w", dir, err)
	}
	for _, e := range entries {
		if match(e.Name()) {
			if err := c.remove(filepath.Join(dir, e.Name()), reason); err != nil {
				return err
			}
		}
	}
	return nil
}

// remove deletes an in-root path (file or tree) and records it. A path
// that does not exist is already clean; one reached through a symlink
// leaving the root is refused by os.Root and reported as a warning.
func (c *cleaner) remove(p, reason string) error {
	rel := rootRel(p)
	if _, err := c.r.Lstat(rel); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.warn("cleanup: skip %s: %s", p, err)
		}
		return nil
	}
	size := c.size(rel)
	if err := c.r.RemoveAll(rel); err != nil {
		return fmt.Errorf("cleanup: remove %s: %w", p, err)
	}
	c.rep.Removed = append(c.rep.Removed, Removal{Path: p, Reason: reason, Bytes: size})
	c.rep.RemovedBytes += size
	return nil
}

func (c *cleaner) size(rel string) int64 {
	var n int64
	fs.WalkDir(c.r.FS(), rel, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func rootRel(p string) string {
	rel := strings.TrimLeft(filepath.Clean("/"+p), "/")
	if rel == "" {
		return "."
	}
	return rel
}

// walk removes the files found by pattern (static libraries, libtool
// archives, Python bytecode caches, leftovers of an interrupted strip or
// upx) and collects the ELF files for strip.
func (c *cleaner) walk(ctx context.Context) error {
	return filepath.WalkDir(c.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		p := inRoot(c.root, path)
		if d.IsDir() {
			if slices.Contains(skippedTrees(), p) {
				return fs.SkipDir
			}
			if d.Name() == "__pycache__" {
				if err := c.remove(p, "Python bytecode cache"); err != nil {
					return err
				}
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if reason := removableFile(path, p); reason != "" {
			return c.remove(p, reason)
		}
		if isELF, err := elfbin.IsELF(path); err == nil && isELF {
			c.elves = append(c.elves, p)
		}
		return nil
	})
}

// removableFile says why the file at host path (in-root p) can go, or "".
func removableFile(path, p string) string {
	name := filepath.Base(p)
	switch {
	case strings.HasSuffix(name, stripTmpSuffix) || strings.HasSuffix(name, upxTmpSuffix) || strings.HasSuffix(name, linkTmpSuffix):
		return "leftover of an interrupted strip or upx"
	case (strings.HasSuffix(name, ".pyc") || strings.HasSuffix(name, ".pyo")) && exists(path[:len(path)-1]):
		return "Python bytecode beside its source"
	case !inLibDir(p):
		return ""
	case strings.HasSuffix(name, ".a") && hasPrefix(path, "!<arch>\n"):
		return "static library: build-time only"
	case strings.HasSuffix(name, ".la") && hasPrefix(path, "# "+name+" - a libtool library file"):
		return "libtool archive: build-time only"
	}
	return ""
}

func inLibDir(p string) bool {
	for _, d := range []string{"/lib/", "/usr/lib/", "/usr/local/lib/", "/lib64/", "/usr/lib64/"} {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func hasPrefix(path, prefix string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, len(prefix))
	if _, err := io.ReadFull(f, buf); err != nil {
		return false
	}
	return bytes.Equal(buf, []byte(prefix))
}
