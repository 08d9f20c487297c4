// Package elfbin answers the questions the build asks about executables and
// shared objects (is it ELF, for which machine, is it static, which
// interpreter and libraries does it need) and strips them without ever
// leaving a broken file behind.
package elfbin

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Info describes one ELF file.
type Info struct {
	Machine elf.Machine
	Type    elf.Type
	// Interp is the PT_INTERP path ("" for a static executable).
	Interp string
	// Needed lists the DT_NEEDED libraries in file order.
	Needed []string
	// RPath holds DT_RUNPATH and DT_RPATH entries, split on ':'.
	RPath []string
	// PIE is set for a position-independent executable (DF_1_PIE in
	// DT_FLAGS_1): what tells one, static-pie included, from a shared
	// library, as both are ET_DYN.
	PIE bool
}

// Static reports whether the file needs no program interpreter.
func (i Info) Static() bool { return i.Interp == "" }

// ErrNotELF is returned for files that do not start with the ELF magic.
var ErrNotELF = errors.New("not an ELF file")

var magic = []byte{0x7f, 'E', 'L', 'F'}

// IsELF reports whether path is a regular file starting with the ELF magic.
// It reads four bytes, so it is cheap enough to call on every file of a tree.
func IsELF(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var head [4]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return bytes.Equal(head[:], magic), nil
}

// Read parses path and returns its Info. A file that is not ELF gives an
// error wrapping ErrNotELF.
func Read(path string) (Info, error) {
	ok, err := IsELF(path)
	if err != nil {
		return Info{}, err
	}
	if !ok {
		return Info{}, fmt.Errorf("%s: %w", path, ErrNotELF)
	}
	f, err := elf.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("parse ELF %s: %w", path, err)
	}
	defer f.Close()
	info := Info{Machine: f.Machine, Type: f.Type}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return Info{}, fmt.Errorf("read PT_INTERP of %s: %w", path, err)
		}
		info.Interp = string(bytes.TrimRight(b, "\x00"))
	}
	if f.Section(".dynamic") == nil {
		return info, nil
	}
	if info.Needed, err = f.ImportedLibraries(); err != nil {
		return Info{}, fmt.Errorf("read DT_NEEDED of %s: %w", path, err)
	}
	flags, err := f.DynValue(elf.DT_FLAGS_1)
	if err != nil {
		return Info{}, fmt.Errorf("read DT_FLAGS_1 of %s: %w", path, err)
	}
	for _, v := range flags {
		info.PIE = info.PIE || elf.DynFlag1(v)&elf.DF_1_PIE != 0
	}
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, err := f.DynString(tag)
		if err != nil {
			return Info{}, fmt.Errorf("read %v of %s: %w", tag, path, err)
		}
		for _, v := range vals {
			info.RPath = append(info.RPath, strings.Split(v, ":")...)
		}
	}
	return info, nil
}

// IsKernelModule reports whether name is a kernel module file (.ko, possibly
// compressed), which must never be stripped with --strip-unneeded: that
// removes the symbols the module loader resolves.
func IsKernelModule(name string) bool {
	base := filepath.Base(name)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(base, ext) {
			return true
		}
	}
	return false
}

// Strip runs `strip` on path in place: --strip-unneeded for programs and
// libraries, --strip-debug for uncompressed kernel modules (compressed ones
// are left alone). The result goes to a temporary file that replaces path
// only after it parses as ELF again, so a strip that fails or produces
// garbage never breaks a binary. It returns the bytes saved.
func Strip(ctx context.Context, path string) (saved int64, err error) {
	if strings.HasSuffix(path, ".ko.xz") || strings.HasSuffix(path, ".ko.zst") || strings.HasSuffix(path, ".ko.gz") {
		return 0, nil
	}
	flag := "--strip-unneeded"
	if IsKernelModule(path) {
		flag = "--strip-debug"
	}
	st, err := os.Lstat(path)
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("strip %s: not a regular file", path)
	}
	tmp := path + ".strip-tmp"
	defer os.Remove(tmp)
	out, err := exec.CommandContext(ctx, "strip", flag, "-o", tmp, path).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("strip %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	if _, err := Read(tmp); err != nil {
		return 0, fmt.Errorf("strip %s produced an unreadable file: %w", path, err)
	}
	nst, err := os.Stat(tmp)
	if err != nil {
		return 0, err
	}
	if err := os.Chmod(tmp, st.Mode().Perm()); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("strip %s: %w", path, err)
	}
	return st.Size() - nst.Size(), nil
}
