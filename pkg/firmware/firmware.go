// Package firmware selects the firmware that goes into the initramfs (the
// firmware.conf entries, from the repository's firmware/ folder or Alpine's
// linux-firmware-* packages) and reports which firmware the image's
// modules ask for and where, if anywhere, it is.
package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/logging"
)

// PackageInstaller installs Alpine packages into the image root; the apk
// runner of pkg/alpine satisfies it.
type PackageInstaller interface {
	Install(ctx context.Context, packages []string) error
}

// PackagePrefix turns a firmware.conf entry into its Alpine package name.
const PackagePrefix = "linux-firmware-"

// ErrBadEntry is wrapped for a firmware.conf entry that is not a plain
// package suffix.
var ErrBadEntry = errors.New("invalid firmware entry")

// Options are the inputs of Select.
type Options struct {
	// Entries are the firmware.conf lines (rtl_nic, bnx2, intel, ...).
	Entries []string
	// FirmwareDir is the repository's firmware/ folder; an entry with a
	// non-empty FirmwareDir/<entry>/ is taken from there.
	FirmwareDir string
	// RootDir is the image root (INSTALL_DIR); files go to
	// RootDir/lib/firmware.
	RootDir string
	// Installer installs linux-firmware-<entry> for the other entries.
	Installer PackageInstaller
	Log       logrus.FieldLogger
}

// Selection says where each entry came from.
type Selection struct {
	// FromRepo are the entries copied from FirmwareDir.
	FromRepo []string
	// Packages are the Alpine packages installed for the other entries.
	Packages []string
}

var entryName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

// Select installs the firmware of every entry into RootDir/lib/firmware:
// FirmwareDir/<entry>/** is mirrored into lib/firmware/<entry>/ (files the
// folder no longer has are removed), and the entries without such a folder
// are installed as linux-firmware-<entry> packages in one Installer call.
func Select(ctx context.Context, opt Options) (Selection, error) {
	var sel Selection
	for _, e := range opt.Entries {
		if !entryName.MatchString(e) {
			return Selection{}, fmt.Errorf("firmware entry %q: %w (want an Alpine linux-firmware-<entry> suffix such as rtl_nic)", e, ErrBadEntry)
		}
		src := filepath.Join(opt.FirmwareDir, e)
		has, err := HasFiles(src)
		if err != nil {
			return Selection{}, err
		}
		if opt.FirmwareDir == "" || !has {
			sel.Packages = append(sel.Packages, PackagePrefix+e)
			continue
		}
		dst := filepath.Join(opt.RootDir, "lib", "firmware", e)
		if err := mirror(src, dst); err != nil {
			return Selection{}, fmt.Errorf("firmware %s from %s: %w", e, src, err)
		}
		sel.FromRepo = append(sel.FromRepo, e)
	}
	if len(sel.Packages) > 0 {
		if opt.Installer == nil {
			return Selection{}, fmt.Errorf("firmware: no installer for %s", strings.Join(sel.Packages, " "))
		}
		if err := opt.Installer.Install(ctx, sel.Packages); err != nil {
			return Selection{}, fmt.Errorf("install firmware packages %s: %w", strings.Join(sel.Packages, " "), err)
		}
	}
	logging.OrDiscard(opt.Log).WithFields(logrus.Fields{"repo": sel.FromRepo, "packages": sel.Packages}).Info("firmware selected")
	return sel, nil
}

// HasFiles reports whether dir exists and holds at least one file, not
// counting the README.md and .gitkeep files that keep a folder in git: a
// firmware folder holding only those has no firmware.
func HasFiles(dir string) (bool, error) {
	found := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() != "README.md" && d.Name() != ".gitkeep" {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read firmware folder %s: %w", dir, err)
	}
	return found, nil
}

// mirror makes dst a copy of src (regular files and symlinks that stay
// inside src) by building it beside dst and renaming it into place.
func mirror(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".tmp-"+filepath.Base(dst)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(tmp, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			return copyLink(p, rel, target)
		case d.Type().IsRegular():
			return copyFile(p, target)
		}
		return fmt.Errorf("%s: not a regular file, directory or symlink", p)
	})
	if err != nil {
		return err
	}
	return fsutil.ReplaceDir(tmp, dst)
}

// copyLink recreates a relative symlink whose target stays inside the
// entry's folder; anything else could point outside the image.
func copyLink(p, rel, target string) error {
	link, err := os.Readlink(p)
	if err != nil {
		return err
	}
	resolved := filepath.Join(filepath.Dir(rel), link)
	if filepath.IsAbs(link) || resolved == ".." || strings.HasPrefix(resolved, ".."+string(filepath.Separator)) {
		return fmt.Errorf("symlink %s -> %s leaves the firmware folder", p, link)
	}
	return os.Symlink(link, target)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
