package components

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/elfbin"
)

// Verification failures, wrapped by Verify's errors.
var (
	ErrMissing       = errors.New("binary missing")
	ErrNotExecutable = errors.New("not executable")
	ErrWrongMachine  = errors.New("not an x86-64 executable")
	ErrNotStatic     = errors.New("dynamically linked")
)

// Verify checks every built component at once: its binary exists, is an
// executable x86-64 ELF program, and is static (no PT_INTERP) unless the
// component is marked dynamic. All problems are returned together.
func Verify(comps []Component, opt Options) error {
	var errs []error
	for _, c := range comps {
		if err := verifyOne(c, opt.Artifact(c)); err != nil {
			errs = append(errs, fmt.Errorf("component %s (%s): %s: %w", c.Name, c.Where(), opt.Artifact(c), err))
		}
	}
	return errors.Join(errs...)
}

func verifyOne(c Component, p string) error {
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return ErrMissing
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return ErrNotExecutable
	}
	info, err := elfbin.Read(p)
	if err != nil {
		return err
	}
	var problems []error
	if info.Machine != elf.EM_X86_64 {
		problems = append(problems, fmt.Errorf("%w (machine %s)", ErrWrongMachine, info.Machine))
	}
	// A static PIE (Rust's musl target, glibc's crt-static) is ET_DYN
	// without an interpreter, like a shared library: its PIE flag tells.
	switch {
	case info.Type == elf.ET_DYN && !info.PIE && info.Interp == "":
		problems = append(problems, fmt.Errorf("%w (a shared library: ET_DYN without the PIE flag)", ErrNotExecutable))
	case info.Type != elf.ET_EXEC && info.Type != elf.ET_DYN:
		problems = append(problems, fmt.Errorf("%w (type %s)", ErrNotExecutable, info.Type))
	}
	if (!info.Static() || len(info.Needed) > 0) && !c.Dynamic {
		problems = append(problems, fmt.Errorf("%w (interpreter %s, needs %s); mark the line dynamic if intended",
			ErrNotStatic, info.Interp, strings.Join(info.Needed, " ")))
	}
	return errors.Join(problems...)
}

// Copy installs each component's binary into root at its INSTALL_PATH with
// mode 0755, through a temporary file renamed into place, stripped first
// when strip is set. Writes stay inside root (os.Root).
func Copy(ctx context.Context, comps []Component, root string, strip bool, opt Options) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("copy components: %w", err)
	}
	defer r.Close()
	for _, c := range comps {
		if err := ctx.Err(); err != nil {
			return err
		}
		src := opt.Artifact(c)
		if strip {
			if src, err = stripped(ctx, c, opt); err != nil {
				return fmt.Errorf("copy component %s: %w", c.Name, err)
			}
		}
		if err := install(r, src, strings.TrimPrefix(c.InstallPath, "/")); err != nil {
			return fmt.Errorf("copy component %s to %s: %w", c.Name, c.InstallPath, err)
		}
	}
	return nil
}

// stripped returns a stripped copy of the artifact, leaving the artifact
// itself untouched so Verify and a later unstripped Copy still see it.
func stripped(ctx context.Context, c Component, opt Options) (string, error) {
	dst := filepath.Join(opt.WorkDir, ".stripped", c.Name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if err := stage(opt.Artifact(c), dst); err != nil {
		return "", err
	}
	if _, err := elfbin.Strip(ctx, dst); err != nil {
		return "", err
	}
	return dst, nil
}

// install copies src to rel inside r through a temporary file: an existing
// symlink at rel is replaced, never followed.
func install(r *os.Root, src, rel string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := fsutil.CreateIn(r, rel, 0o755)
	if err != nil {
		return err
	}
	defer out.Cleanup()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Commit()
}
