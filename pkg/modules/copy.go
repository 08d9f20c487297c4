package modules

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/logging"
)

// Paths inside the image that /init and the zinit units read.
const (
	Stage1ListPath    = "etc/zero-os/modules-stage1.list"
	Stage2ListPath    = "etc/zero-os/modules-stage2.list"
	KernelVersionPath = "etc/zero-os/kernel-version"
)

// Plan is the outcome of modules_setup: the closures of the stage 1 and
// stage 2 entries of modules.conf against one module tree.
type Plan struct {
	Version        string
	Stage1, Stage2 Closure
	// Stage1Names and Stage2Names are the modules.conf entries.
	Stage1Names, Stage2Names []string
}

// NewPlan resolves the stage 1 and stage 2 module names. Every unknown
// name is reported (errors.Is ErrUnknownModule), with its nearest names.
func NewPlan(ix *Index, stage1, stage2 []string) (Plan, error) {
	p := Plan{Version: ix.Version, Stage1Names: stage1, Stage2Names: stage2}
	var err1, err2 error
	p.Stage1, err1 = ix.Resolve(stage1)
	p.Stage2, err2 = ix.Resolve(stage2)
	if err := errors.Join(err1, err2); err != nil {
		return Plan{}, fmt.Errorf("resolve modules.conf entries: %w", err)
	}
	return p, nil
}

// StageLists returns the module names of the two load lists, dependencies
// first; a module of stage 1 is not repeated in stage 2. Built-in modules
// are left out: there is nothing to load.
func (p Plan) StageLists() (stage1, stage2 []string) {
	seen := map[string]bool{}
	for _, e := range p.Stage1.Modules() {
		seen[e.Name] = true
		stage1 = append(stage1, e.Name)
	}
	for _, e := range p.Stage2.Modules() {
		if !seen[e.Name] {
			seen[e.Name] = true
			stage2 = append(stage2, e.Name)
		}
	}
	return stage1, stage2
}

// Files returns the module files of both stages, relative to
// lib/modules/VERSION, each once.
func (p Plan) Files() []string {
	var out []string
	for _, c := range []Closure{p.Stage1, p.Stage2} {
		for _, e := range c.Modules() {
			if !slices.Contains(out, e.Path) {
				out = append(out, e.Path)
			}
		}
	}
	return out
}

// CopyOptions locates the trees for Copy.
type CopyOptions struct {
	// SrcRoot holds lib/modules/VERSION (the kernel_modules output, or
	// KERNEL_MODULES_DIR).
	SrcRoot string
	// DstRoot is the image root (INSTALL_DIR).
	DstRoot string
	// Depmod is the depmod binary; "" means depmod from PATH.
	Depmod string
	Log    logrus.FieldLogger
}

// Copy puts exactly the plan's modules into DstRoot/lib/modules/VERSION
// (same relative paths; module files of an earlier run that the plan no
// longer has are removed, and so are other versions' trees), copies modules.order (reduced to those modules)
// and modules.builtin*, regenerates the indexes with depmod -b, checks that
// the copy resolves every entry to the same modules as the source, and
// writes the stage 1 and stage 2 load lists (in the copy's load order) and
// etc/zero-os/kernel-version.
func Copy(ctx context.Context, p Plan, opt CopyOptions) error {
	src := filepath.Join(opt.SrcRoot, "lib", "modules", p.Version)
	dst := filepath.Join(opt.DstRoot, "lib", "modules", p.Version)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("copy modules: %w", err)
	}
	if err := removeOtherVersions(filepath.Dir(dst), p.Version, logging.OrDiscard(opt.Log)); err != nil {
		return err
	}
	files := p.Files()
	removed, err := removeUnwanted(dst, files)
	if err != nil {
		return err
	}
	copied := 0
	for _, f := range files {
		did, err := copyIfChanged(filepath.Join(src, f), filepath.Join(dst, f))
		if err != nil {
			return err
		}
		if did {
			copied++
		}
	}
	if err := copyMetadata(src, dst, files); err != nil {
		return err
	}
	if err := runDepmod(ctx, opt.Depmod, opt.DstRoot, p.Version); err != nil {
		return err
	}
	inImage, err := verifyCopy(p, opt.DstRoot)
	if err != nil {
		return err
	}
	s1, s2 := inImage.StageLists()
	for path, content := range map[string]string{
		Stage1ListPath:    lines(s1),
		Stage2ListPath:    lines(s2),
		KernelVersionPath: p.Version + "\n",
	} {
		if err := fsutil.WriteFile(filepath.Join(opt.DstRoot, path), []byte(content), 0o644); err != nil {
			return err
		}
	}
	logging.OrDiscard(opt.Log).WithFields(logrus.Fields{"modules": len(files), "copied": copied, "removed": removed,
		"stage1": len(s1), "stage2": len(s2)}).Info("modules copied")
	return nil
}

func lines(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return strings.Join(ss, "\n") + "\n"
}

// removeOtherVersions deletes the module trees of other kernel versions
// (an earlier build with another FULL_VERSION): the image has one kernel.
func removeOtherVersions(modulesDir, version string, log logrus.FieldLogger) error {
	ents, err := os.ReadDir(modulesDir)
	if err != nil {
		return fmt.Errorf("copy modules: %w", err)
	}
	for _, e := range ents {
		if e.Name() == version {
			continue
		}
		log.WithField("dir", filepath.Join(modulesDir, e.Name())).Warn("removing modules of another kernel version")
		if err := os.RemoveAll(filepath.Join(modulesDir, e.Name())); err != nil {
			return fmt.Errorf("copy modules: %w", err)
		}
	}
	return nil
}

// removeUnwanted deletes module files below dst that are not in keep, then
// the directories that became empty. It returns how many files went.
func removeUnwanted(dst string, keep []string) (int, error) {
	want := map[string]bool{}
	for _, k := range keep {
		want[filepath.FromSlash(k)] = true
	}
	n := 0
	var dirs []string
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dst, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel != "." {
				dirs = append(dirs, p)
			}
			return nil
		}
		// A temporary file left by an interrupted run goes too.
		if (!IsModuleFile(d.Name()) || want[rel]) && !fsutil.IsTemp(d.Name()) {
			return nil
		}
		n++
		return os.Remove(p)
	})
	if err != nil {
		return n, fmt.Errorf("remove stale modules from %s: %w", dst, err)
	}
	// Deepest first, so a parent is empty once its children are gone.
	for i := len(dirs) - 1; i >= 0; i-- {
		if ents, err := os.ReadDir(dirs[i]); err == nil && len(ents) == 0 {
			if err := os.Remove(dirs[i]); err != nil {
				return n, fmt.Errorf("remove empty directory %s: %w", dirs[i], err)
			}
		}
	}
	return n, nil
}

// copyMetadata copies modules.builtin* as they are and modules.order
// reduced to the copied modules, in the source's order.
func copyMetadata(src, dst string, files []string) error {
	builtin, err := filepath.Glob(filepath.Join(src, "modules.builtin*"))
	if err != nil {
		return fmt.Errorf("list modules.builtin files: %w", err)
	}
	for _, b := range builtin {
		if _, err := copyIfChanged(b, filepath.Join(dst, filepath.Base(b))); err != nil {
			return err
		}
	}
	order, err := os.ReadFile(filepath.Join(src, "modules.order"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read modules.order: %w", err)
	}
	keep := map[string]bool{}
	for _, f := range files {
		keep[uncompressedPath(f)] = true
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(order))
	for sc.Scan() {
		if keep[strings.TrimSpace(sc.Text())] {
			out.WriteString(sc.Text() + "\n")
		}
	}
	return fsutil.WriteFile(filepath.Join(dst, "modules.order"), out.Bytes(), 0o644)
}

func runDepmod(ctx context.Context, depmod, root, version string) error {
	if depmod == "" {
		depmod = "depmod"
	}
	cmd := exec.CommandContext(ctx, depmod, "-b", root, version)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("depmod -b %s %s: %w: %s", root, version, err, bytes.TrimSpace(out))
	}
	return nil
}

// verifyCopy resolves the modules.conf entries again in the copy. It must
// find the same modules as the plan, or the image would load something
// else. The order may differ: depmod orders independent dependencies by
// the set of modules it sees. The copy's plan is returned, since its order
// is the one modprobe in the image follows.
func verifyCopy(p Plan, dstRoot string) (Plan, error) {
	ix, err := Load(dstRoot, p.Version, Options{})
	if err != nil {
		return Plan{}, fmt.Errorf("verify copied modules: %w", err)
	}
	if ix.Source != SourceModulesDep {
		return Plan{}, fmt.Errorf("verify copied modules: depmod left no usable modules.dep in %s", ix.Dir)
	}
	got, err := NewPlan(ix, p.Stage1Names, p.Stage2Names)
	if err != nil {
		return Plan{}, fmt.Errorf("verify copied modules: %w", err)
	}
	for _, c := range [][2]Closure{{got.Stage1, p.Stage1}, {got.Stage2, p.Stage2}} {
		if !sameEntries(c[0].Entries, c[1].Entries) {
			return Plan{}, fmt.Errorf("verify copied modules: the copy resolves to %v, the source to %v",
				c[0].Lines(), c[1].Lines())
		}
	}
	return got, nil
}

// sameEntries reports whether a and b hold the same entries in any order.
func sameEntries(a, b []Entry) bool {
	cmp := func(x, y Entry) int { return strings.Compare(x.String(), y.String()) }
	x, y := slices.Clone(a), slices.Clone(b)
	slices.SortFunc(x, cmp)
	slices.SortFunc(y, cmp)
	return slices.Equal(x, y)
}

// copyIfChanged copies src to dst through a temporary file unless dst
// already has src's size and modification time. It keeps the mode and the
// modification time, so the next run can skip the file.
func copyIfChanged(src, dst string) (bool, error) {
	si, err := os.Stat(src)
	if err != nil {
		return false, fmt.Errorf("copy module file: %w", err)
	}
	if di, err := os.Stat(dst); err == nil && di.Size() == si.Size() && di.ModTime().Equal(si.ModTime()) {
		return false, nil
	}
	if err := fsutil.CopyFile(src, dst, si.Mode().Perm(), fsutil.ModTime(si.ModTime())); err != nil {
		return false, err
	}
	return true, nil
}
