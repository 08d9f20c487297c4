package zinit

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
)

// ConfigDir is where zinit reads its units inside the rootfs.
const ConfigDir = "/etc/zinit"

// Install validates the units in srcDir (see LoadDir) and, only when they
// are all valid, installs them into rootDir: srcDir/*.yaml to
// /etc/zinit/ (mode 0644) and srcDir/init/*.sh to /etc/zinit/init/ (mode
// 0755). Whatever /etc/zinit held before is replaced as a whole, so a unit
// removed from srcDir disappears on the next run. The new tree is built
// beside the old one and swapped in with renames, so an interrupted run
// leaves either the old or the new set (or none, which a rerun repairs).
// The returned Set carries the warnings for the caller to log.
func Install(ctx context.Context, srcDir, rootDir string) (*Set, error) {
	return InstallDirs(ctx, rootDir, srcDir)
}

// InstallDirs is Install of the units of several directories laid over
// each other (see LoadDirs): a profile's zinit/ over the shipped one.
func InstallDirs(ctx context.Context, rootDir string, srcDirs ...string) (*Set, error) {
	set, err := loadNonEmpty(srcDirs...)
	if err != nil {
		return set, fmt.Errorf("validate zinit units in %s: %w", strings.Join(srcDirs, " + "), err)
	}
	etc := filepath.Join(rootDir, "etc")
	final := filepath.Join(etc, "zinit")
	// A fixed name, so the leftover of a killed run is found and removed
	// instead of ending up in the image.
	staging := filepath.Join(etc, ".zinit.new")
	if err := os.RemoveAll(staging); err != nil {
		return set, fmt.Errorf("remove leftover %s: %w", staging, err)
	}
	if err := set.writeTo(ctx, staging); err != nil {
		os.RemoveAll(staging)
		return set, err
	}
	if err := fsutil.ReplaceDir(staging, final); err != nil {
		return set, fmt.Errorf("install zinit units: %w", err)
	}
	return set, nil
}

// writeTo copies the set's units and scripts into dir, which must not exist.
func (s *Set) writeTo(ctx context.Context, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "init"), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, u := range s.Units {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyFile(u.File, filepath.Join(dir, filepath.Base(u.File)), 0o644); err != nil {
			return err
		}
	}
	for _, name := range s.Scripts {
		if err := copyFile(s.ScriptFile(name), filepath.Join(dir, "init", name), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("install %s: %w", src, err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		return fmt.Errorf("install %s: %w", src, err)
	}
	// WriteFile's mode is filtered by the umask; the rootfs needs it exact.
	if err := os.Chmod(dst, mode); err != nil {
		return fmt.Errorf("install %s: %w", src, err)
	}
	return nil
}

// ValidateRoot checks the units installed in rootDir's /etc/zinit with the
// same rules as LoadDir. It is what rootfs validation calls.
func ValidateRoot(rootDir string) (*Set, error) {
	dir := filepath.Join(rootDir, "etc", "zinit")
	st, err := os.Lstat(dir)
	if err != nil {
		return &Set{Dir: dir}, fmt.Errorf("zinit config %s: %w", ConfigDir, err)
	}
	if !st.IsDir() {
		return &Set{Dir: dir}, fmt.Errorf("zinit config %s: not a directory (%s)", ConfigDir, st.Mode().Type())
	}
	return loadNonEmpty(dir)
}

// loadNonEmpty is LoadDir for a directory that must hold at least one unit:
// zinit with no unit boots into a machine that does nothing.
func loadNonEmpty(dirs ...string) (*Set, error) {
	set, err := LoadDirs(dirs...)
	if err == nil && len(set.Units) == 0 {
		err = &Problem{File: set.where(), Msg: "no unit (*.yaml) found", Err: ErrInvalid}
	}
	return set, err
}
