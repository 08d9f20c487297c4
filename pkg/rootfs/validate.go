package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/zinit"
)

// Sentinel errors of Validate, each wrapped by one finding.
var (
	ErrMissing            = errors.New("missing")
	ErrNotExecutable      = errors.New("not executable")
	ErrMissingCommand     = errors.New("command not found")
	ErrMissingInterpreter = errors.New("program interpreter not found")
	ErrMissingLibrary     = errors.New("shared library not found")
	ErrBadELF             = errors.New("unreadable ELF file")
)

// ValidateOptions tunes Validate.
type ValidateOptions struct {
	// Commands must resolve to executables in the standard PATH directories
	// of the rootfs; nil means DefaultCommands. modprobe is added when the
	// image ships a stage-1 module list for /init to load.
	Commands []string
	Log      logrus.FieldLogger
}

// DefaultCommands are the core commands /init and the unit scripts rely on,
// from busybox applet links or coreutils/util-linux.
func DefaultCommands() []string {
	return []string{"sh", "mount", "umount", "mkdir", "cat", "ls", "ln", "rm", "sleep"}
}

// pathDirs is the PATH the unit scripts set.
func pathDirs() []string {
	return []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}
}

// Validate checks that the rootfs at root can boot: /init and /sbin/zinit
// are executables, /etc/zinit holds valid units whose programs exist, the
// core commands resolve, and every ELF file finds its program interpreter
// and each DT_NEEDED library inside the tree. Symlinks are resolved inside
// root, never on the host. The error joins every problem found.
func Validate(root string, opt ValidateOptions) error {
	var errs []error
	for _, p := range []string{"/init", "/sbin/zinit"} {
		if err := checkExecutable(root, p); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, checkUnits(root, logging.OrDiscard(opt.Log))...)
	errs = append(errs, checkCommands(root, opt.Commands)...)
	elfErrs, err := checkELFDeps(root)
	if err != nil {
		return fmt.Errorf("validate %s: %w", root, err)
	}
	errs = append(errs, elfErrs...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("validate %s: %d problems:\n%w", root, countProblems(errs), err)
	}
	return nil
}

// countProblems counts findings, looking into zinit's joined error.
func countProblems(errs []error) int {
	n := 0
	for _, err := range errs {
		n += max(1, len(zinit.Problems(err)))
	}
	return n
}

func checkExecutable(root, p string) error {
	host, err := Resolve(root, p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", p, ErrMissing)
		}
		return err
	}
	st, err := os.Stat(host)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: %w (mode %s)", p, ErrNotExecutable, st.Mode())
	}
	return nil
}

// checkUnits validates /etc/zinit and checks each unit's program: a missing
// program makes zinit mark the unit failed for good, which is harmless
// (a warning) unless another unit waits for it in `after`.
func checkUnits(root string, log logrus.FieldLogger) []error {
	set, err := zinit.ValidateRoot(root)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, w := range set.Warnings {
		log.Warn(w.Error())
	}
	for _, u := range set.Units {
		if len(u.Argv) == 0 {
			continue
		}
		if _, err := lookPath(root, u.Argv[0]); err == nil {
			continue
		}
		dependents := dependentsOf(set, u.Name)
		if len(dependents) > 0 {
			errs = append(errs, fmt.Errorf("%s: unit %s: program %s: %w; zinit would block %v forever", zinit.ConfigDir, u.Name, u.Argv[0], ErrMissingCommand, dependents))
		} else {
			log.Warnf("%s: unit %s: program %s not found; zinit will mark it failed", zinit.ConfigDir, u.Name, u.Argv[0])
		}
	}
	return errs
}

func dependentsOf(set *zinit.Set, name string) []string {
	var out []string
	for _, u := range set.Units {
		if slices.Contains(u.After, name) {
			out = append(out, u.Name)
		}
	}
	return out
}

func checkCommands(root string, commands []string) []error {
	if commands == nil {
		commands = DefaultCommands()
	}
	if _, err := Resolve(root, "/etc/zero-os/modules-stage1.list"); err == nil && !slices.Contains(commands, "modprobe") {
		commands = append(slices.Clone(commands), "modprobe")
	}
	var errs []error
	for _, c := range commands {
		if _, err := lookPath(root, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// lookPath finds name (a bare command or an absolute path) inside the
// rootfs and returns its host path; it must be an executable regular file.
func lookPath(root, name string) (string, error) {
	candidates := []string{name}
	if !filepath.IsAbs(name) {
		candidates = candidates[:0]
		for _, d := range pathDirs() {
			candidates = append(candidates, filepath.Join(d, name))
		}
	}
	for _, c := range candidates {
		host, err := Resolve(root, c)
		if err != nil {
			continue
		}
		if st, err := os.Stat(host); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return host, nil
		}
	}
	if filepath.IsAbs(name) {
		return "", fmt.Errorf("%s: %w", name, ErrMissingCommand)
	}
	return "", fmt.Errorf("%s: %w in %s", name, ErrMissingCommand, strings.Join(pathDirs(), ":"))
}
