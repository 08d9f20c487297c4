package rootfs

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/elfbin"
)

// skippedTrees hold no programs: firmware blobs (some are ELF files for
// other processors) and the kernel's virtual filesystems' mount points.
func skippedTrees() []string {
	return []string{"/proc", "/sys", "/dev", "/lib/firmware", "/usr/lib/firmware"}
}

// standardLibDirs is where the dynamic loaders look when nothing else is
// configured: musl's default (/lib, /usr/local/lib, /usr/lib), glibc's, and
// Debian's multiarch directories.
func standardLibDirs() []string {
	return []string{"/lib", "/usr/local/lib", "/usr/lib", "/lib64", "/usr/lib64", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}
}

// libResolver finds shared libraries inside a rootfs the way its loader would.
type libResolver struct {
	root  string
	infos map[string]*elfbin.Info // host path -> parsed ELF (nil: not usable)
	found map[string]bool         // search dirs + name -> found
}

// checkELFDeps walks the tree and reports, for every ELF program and
// library, a missing program interpreter or DT_NEEDED library.
func checkELFDeps(root string) ([]error, error) {
	r := &libResolver{root: root, infos: map[string]*elfbin.Info{}, found: map[string]bool{}}
	var errs []error
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := inRoot(root, path)
		if d.IsDir() && slices.Contains(skippedTrees(), rel) {
			return fs.SkipDir
		}
		if !d.Type().IsRegular() || elfbin.IsKernelModule(path) {
			return nil
		}
		isELF, err := elfbin.IsELF(path)
		if err != nil || !isELF {
			return err
		}
		info, err := elfbin.Read(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w: %w", rel, ErrBadELF, err))
			return nil
		}
		errs = append(errs, r.check(rel, info)...)
		return nil
	})
	return errs, err
}

func (r *libResolver) check(bin string, info elfbin.Info) []error {
	if info.Type == elf.ET_REL {
		return nil
	}
	var errs []error
	if info.Interp != "" {
		if _, err := r.usable(info.Interp, info.Machine); err != nil {
			errs = append(errs, fmt.Errorf("%s: interpreter %s: %w", bin, info.Interp, ErrMissingInterpreter))
		}
	}
	dirs := r.searchDirs(bin, info)
	for _, lib := range info.Needed {
		if !r.find(lib, dirs, info.Machine) {
			errs = append(errs, fmt.Errorf("%s: needs %s: %w (searched %s)", bin, lib, ErrMissingLibrary, strings.Join(dirs, ":")))
		}
	}
	return errs
}

// searchDirs lists where the loader looks for bin's libraries: its
// RPATH/RUNPATH ($ORIGIN expanded), then musl's path file when bin uses musl
// and the file exists (it replaces musl's defaults), else the ld.so.conf
// entries and the standard directories.
func (r *libResolver) searchDirs(bin string, info elfbin.Info) []string {
	var dirs []string
	origin := filepath.Dir(bin)
	for _, p := range info.RPath {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "${ORIGIN}", origin), "$ORIGIN", origin)
		if p != "" && !strings.Contains(p, "$") {
			dirs = append(dirs, p)
		}
	}
	if base := filepath.Base(info.Interp); strings.HasPrefix(base, "ld-musl-") {
		arch := strings.TrimSuffix(strings.TrimPrefix(base, "ld-musl-"), ".so.1")
		if musl, ok := r.listFile("/etc/ld-musl-"+arch+".path", ":\n"); ok {
			return append(dirs, musl...)
		}
	}
	if conf, ok := r.listFile("/etc/ld.so.conf", "\n"); ok {
		dirs = append(dirs, r.ldSoConf(conf)...)
	}
	return append(dirs, standardLibDirs()...)
}

// listFile reads a file of the rootfs as a list split on any of seps,
// without blanks and # comments.
func (r *libResolver) listFile(p, seps string) ([]string, bool) {
	host, err := Resolve(r.root, p)
	if err != nil {
		return nil, false
	}
	data, err := os.ReadFile(host)
	if err != nil {
		return nil, false
	}
	var out []string
	for _, f := range strings.FieldsFunc(string(data), func(c rune) bool { return strings.ContainsRune(seps, c) }) {
		if f = strings.TrimSpace(f); f != "" && !strings.HasPrefix(f, "#") {
			out = append(out, f)
		}
	}
	return out, true
}

// ldSoConf expands glibc's "include GLOB" lines, one level deep, which is
// all Debian-style configurations use.
func (r *libResolver) ldSoConf(lines []string) []string {
	var dirs []string
	for _, l := range lines {
		pattern, ok := strings.CutPrefix(l, "include ")
		if !ok {
			dirs = append(dirs, l)
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(r.root, strings.TrimSpace(pattern)))
		slices.Sort(matches)
		for _, m := range matches {
			sub, _ := r.listFile(inRoot(r.root, m), "\n")
			for _, s := range sub {
				if !strings.HasPrefix(s, "include ") {
					dirs = append(dirs, s)
				}
			}
		}
	}
	return dirs
}

func (r *libResolver) find(lib string, dirs []string, machine elf.Machine) bool {
	if strings.Contains(lib, "/") {
		_, err := r.usable(lib, machine)
		return err == nil
	}
	key := strings.Join(dirs, ":") + "\x00" + lib + "\x00" + machine.String()
	if found, ok := r.found[key]; ok {
		return found
	}
	found := false
	for _, d := range dirs {
		if _, err := r.usable(filepath.Join(d, lib), machine); err == nil {
			found = true
			break
		}
	}
	r.found[key] = found
	return found
}

// usable resolves p inside the root and checks that it is an ELF file for
// the same machine, as a loader skips libraries of another architecture.
func (r *libResolver) usable(p string, machine elf.Machine) (string, error) {
	host, err := Resolve(r.root, p)
	if err != nil {
		return "", err
	}
	info, ok := r.infos[host]
	if !ok {
		if st, err := os.Stat(host); err == nil && st.Mode().IsRegular() {
			if i, err := elfbin.Read(host); err == nil {
				info = &i
			}
		}
		r.infos[host] = info
	}
	if info == nil {
		return "", fmt.Errorf("%s: %w", p, ErrBadELF)
	}
	if info.Machine != machine {
		return "", fmt.Errorf("%s: %w: machine %s, want %s", p, ErrBadELF, info.Machine, machine)
	}
	return host, nil
}
