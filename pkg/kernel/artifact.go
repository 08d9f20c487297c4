package kernel

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/threefoldtech/zosbuilder/pkg/cache"
)

// artifactLayout names how kernel_modules builds and what its artifact
// holds; change it when either changes, so older artifacts are not used.
const artifactLayout = "objtree O=linux/out; make vmlinux modules; modules_install; depmod; objtree without module objects and final link outputs"

// ModulesRecipe is what kernel_modules' artifact is made of: the source
// tarball, the kernel config and the options every build forces, the
// release, kbuild's fixed identity and timestamp, and the toolchain (gcc,
// binutils, kmod's depmod). sourceSHA256 is SourceSHA256's answer. Paths,
// JOBS and the compile cache are left out: they do not change the bytes.
func ModulesRecipe(ctx context.Context, opt Options, sourceSHA256 string) (*cache.Recipe, error) {
	cfg, err := os.ReadFile(opt.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("kernel recipe: %w", err)
	}
	cfgSum := sha256.Sum256(cfg)
	r := cache.NewRecipe("kernel_modules", "kernel_modules").
		Add("target", "ARCH=x86_64").
		Add("source", "sha256 "+sourceSHA256).
		Add("release", opt.FullVersion).
		Add("config", "sha256 "+hex.EncodeToString(cfgSum[:])).
		Add("forced", string(RequiredOptions().Bytes())+`CONFIG_INITRAMFS_SOURCE=""`).
		Add("kbuild", strings.Join(opt.kbuildEnv(), " ")).
		Add("layout", artifactLayout)
	depmod := opt.Depmod
	if depmod == "" {
		depmod = "depmod"
	}
	for _, t := range []struct{ field, name, arg string }{
		{"gcc", "gcc", "--version"}, {"binutils", "ld", "--version"}, {"kmod", depmod, "--version"},
	} {
		if err := r.AddTool(ctx, "", t.field, t.name, t.arg); err != nil {
			return nil, fmt.Errorf("kernel recipe: %w", err)
		}
	}
	return r, nil
}

// ArtifactParts are what kernel_modules publishes: the installed modules
// (modules-root) and the objtree kernel_build relinks the bzImage in. The
// objtree leaves out what kernel_build never reads (module objects, .ko
// files) and what it always makes again (vmlinux and the other final link
// outputs, since the initramfs is new). Anything left out that a later
// make needs after all is simply built again.
//
// The kernel's own records are relative, but objtool (a host tool every
// object depends on) is built by tools/build with absolute paths in its
// .cmd and .d files: they are relocated, or objtool would be rebuilt on
// another machine and, being newer, make every object rebuild.
func (l Layout) ArtifactParts() ([]cache.Part, error) {
	tree, err := filepath.Abs(l.Tree())
	if err != nil {
		return nil, err
	}
	return []cache.Part{
		{Name: "modules-root", Path: l.ModulesRoot()},
		{Name: "objtree", Path: l.Objtree(), Skip: objtreeSkip(l.Objtree()),
			Relocate: &cache.Relocation{Root: tree, Files: isKbuildRecord}},
	}, nil
}

// isKbuildRecord selects the command and dependency records make reads
// (.name.cmd, .name.d).
func isKbuildRecord(rel string) bool {
	base := path.Base(rel)
	return strings.HasPrefix(base, ".") && (strings.HasSuffix(base, ".cmd") || strings.HasSuffix(base, ".d"))
}

// finalOutputs are objtree files relinked whenever the initramfs changes.
var finalOutputs = map[string]bool{
	"vmlinux": true, "vmlinux.o": true, "System.map": true, ".vmlinux.objs": true,
	"arch/x86/boot/bzImage": true, "arch/x86/boot/vmlinux.bin": true, "arch/x86/boot/setup.elf": true,
	"arch/x86/boot/compressed/vmlinux": true, "arch/x86/boot/compressed/vmlinux.bin": true,
	"arch/x86/boot/compressed/piggy.o": true, "arch/x86/boot/compressed/piggy.S": true,
}

// objtreeSkip returns the Skip function of the objtree part: it reads the
// modules' object lists (<module>.mod, written by kbuild) on first use.
func objtreeSkip(objtree string) func(rel string, d fs.DirEntry) bool {
	var once sync.Once
	moduleFiles := map[string]bool{}
	load := func() {
		_ = filepath.WalkDir(objtree, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".mod") {
				return nil
			}
			rel, err := filepath.Rel(objtree, p)
			if err != nil {
				return nil
			}
			mod := strings.TrimSuffix(filepath.ToSlash(rel), ".mod")
			for _, f := range []string{mod + ".ko", mod + ".mod.c", mod + ".mod.o"} {
				addWithCmd(moduleFiles, f)
			}
			for _, obj := range readLines(p) {
				addWithCmd(moduleFiles, obj)
			}
			return nil
		})
	}
	return func(rel string, d fs.DirEntry) bool {
		once.Do(load)
		base := path.Base(rel)
		switch {
		case rel == "source": // a symlink kbuild makes on every run
			return true
		case finalOutputs[rel], strings.HasPrefix(rel, ".tmp_vmlinux"):
			return true
		case d.IsDir():
			return false
		case strings.HasSuffix(base, ".ko"):
			return true
		}
		return moduleFiles[rel]
	}
}

// addWithCmd adds an objtree file and kbuild's record of its command
// (dir/.name.cmd): an object without its record is rebuilt anyway.
func addWithCmd(set map[string]bool, rel string) {
	rel = path.Clean(rel)
	set[rel] = true
	set[path.Join(path.Dir(rel), "."+path.Base(rel)+".cmd")] = true
}

func readLines(p string) []string {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, w := range strings.Fields(sc.Text()) {
			out = append(out, w)
		}
	}
	return out
}
