package components

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/archive"
	"github.com/threefoldtech/zosbuilder/pkg/cache"
	"github.com/threefoldtech/zosbuilder/pkg/download"
	"github.com/threefoldtech/zosbuilder/pkg/elfbin"
)

// ErrBuild is wrapped by the error of a failed component build.
var ErrBuild = errors.New("component build failed")

// TailLines is how many lines of a failed build's log its error shows.
const TailLines = 40

// Options configure Build, Verify and Copy.
type Options struct {
	// WorkDir holds checkouts, cargo target directories and built binaries
	// (COMPONENTS_DIR).
	WorkDir string
	// LogDir holds one log per component; empty means WorkDir/.logs.
	LogDir string
	// ProjectRoot resolves relative local SOURCEs and script paths.
	ProjectRoot string
	// Jobs bounds how many components build at once; 0 means 1.
	Jobs int
	// Fetcher downloads release components.
	Fetcher *download.Fetcher
	// Env is added to the environment of every build command.
	Env []string
	// Cache, when set, restores a component built elsewhere from the same
	// source and recipe instead of compiling it, and publishes what is
	// compiled here.
	Cache *cache.Cache
	// Log receives warnings (kept local changes) and progress; nil is silent.
	Log logrus.FieldLogger
}

func (o Options) logDir() string {
	if o.LogDir != "" {
		return o.LogDir
	}
	return filepath.Join(o.WorkDir, ".logs")
}

// Artifact is where Build leaves the component's binary and Verify and
// Copy read it: WorkDir/.out/NAME.
func (o Options) Artifact(c Component) string { return filepath.Join(o.WorkDir, ".out", c.Name) }

// LogFile is the component's build log.
func (o Options) LogFile(c Component) string { return filepath.Join(o.logDir(), c.Name+".log") }

// checkoutDir is where a git component is cloned or a release tarball
// extracted.
func (o Options) checkoutDir(c Component) string { return filepath.Join(o.WorkDir, c.Name) }

// Build fetches and builds comps, at most Jobs at a time, each logging to
// its own LogFile. Every failure is returned (joined), each with the tail of
// its log.
func Build(ctx context.Context, comps []Component, opt Options) error {
	if opt.WorkDir == "" {
		return errors.New("build components: no work directory")
	}
	for _, d := range []string{opt.WorkDir, opt.logDir(), filepath.Dir(opt.Artifact(Component{Name: "x"}))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("build components: %w", err)
		}
	}
	jobs := max(opt.Jobs, 1)
	sem := make(chan struct{}, jobs)
	errs := make([]error, len(comps))
	var wg sync.WaitGroup
	for i, c := range comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = fmt.Errorf("component %s: %w", c.Name, ctx.Err())
				return
			}
			defer func() { <-sem }()
			errs[i] = buildOne(ctx, c, opt)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// buildOne runs one component's build with its log file open.
func buildOne(ctx context.Context, c Component, opt Options) error {
	logPath := opt.LogFile(c)
	lf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("component %s: %w", c.Name, err)
	}
	b := &builder{c: c, opt: opt, out: lf, log: logging.OrDiscard(opt.Log).WithField("component", c.Name)}
	err = b.run(ctx)
	if cerr := lf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return nil
	}
	fmt.Fprintf(lf, "\nerror: %s\n", err)
	return fmt.Errorf("%w: %s (%s): %w\nlast lines of %s:\n%s", ErrBuild, c.Name, c.Where(), err, logPath, fsutil.FileLastLines(logPath, TailLines))
}

// builder builds one component.
type builder struct {
	c   Component
	opt Options
	out io.Writer // the log file
	log logrus.FieldLogger
}

func (b *builder) run(ctx context.Context) error {
	src, err := b.source(ctx)
	if err != nil {
		return err
	}
	build := func(ctx context.Context) error {
		b.log.Infof("building %s (%s %s, %s)", b.c.Name, b.c.Type, b.c.Version, b.c.Build)
		bin, err := b.compile(ctx, src)
		if err != nil {
			return err
		}
		return stage(bin, b.opt.Artifact(b.c))
	}
	if b.opt.Cache == nil || !cacheable(b.c) {
		return build(ctx)
	}
	recipe, err := b.recipe(ctx, src)
	if err != nil {
		return err
	}
	built := false
	err = b.opt.Cache.Do(ctx, b.artifact(recipe), func(ctx context.Context) error {
		built = true
		return build(ctx)
	})
	if err == nil && !built {
		b.log.Infof("%s: restored from the artifact cache (%s)", b.c.Name, recipe.Key()[:12])
		fmt.Fprintf(b.out, "restored from the artifact cache %s, key %s; recipe:\n%s", b.opt.Cache.Where(), recipe.Key(), recipe)
	}
	return err
}

// source makes the component's source available and returns its
// directory (or, for a prebuilt binary, the file).
func (b *builder) source(ctx context.Context) (string, error) {
	switch b.c.Type {
	case Git:
		dir := b.opt.checkoutDir(b.c)
		return dir, b.syncGit(ctx, dir)
	case Release:
		return b.fetchRelease(ctx)
	}
	p := b.c.Source
	if !filepath.IsAbs(p) {
		p = filepath.Join(b.opt.ProjectRoot, p)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("local source: %w", err)
	}
	return p, nil
}

// fetchRelease downloads a pinned release. A binary is used as is; an
// archive is extracted into the checkout directory (afresh each time).
func (b *builder) fetchRelease(ctx context.Context) (string, error) {
	if b.opt.Fetcher == nil {
		return "", errors.New("release component: no downloader configured")
	}
	sum, err := download.ParseChecksum(b.c.Checksum)
	if err != nil {
		return "", err
	}
	if sum.Weak() {
		b.log.Warnf("%s is pinned by md5 only (%s): weaker than sha256, it catches a corrupted download but not a forged one", b.c.Name, b.c.Where())
	}
	f, err := b.opt.Fetcher.File(ctx, b.c.Source, b.c.Checksum)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(b.out, "downloaded %s (%s %s)\n", redact.MaskURL(b.c.Source), sum.Algo, sum.Hex)
	if ok, err := elfbin.IsELF(f); err != nil || ok {
		return f, err
	}
	dir := b.opt.checkoutDir(b.c)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".extract-")
	if err != nil {
		return "", err
	}
	defer fsutil.RemoveAll(tmp) // a no-op once renamed
	if err := archive.ExtractFile(ctx, f, tmp, archive.Options{Log: b.log}); err != nil {
		return "", err
	}
	return dir, fsutil.ReplaceDir(tmp, dir)
}

// compile runs the BUILD kind in src and returns the built binary's path.
func (b *builder) compile(ctx context.Context, src string) (string, error) {
	spec := b.c.Build
	dir := filepath.Join(src, spec.Dir)
	switch spec.Kind {
	case CargoMusl:
		target := filepath.Join(b.opt.WorkDir, ".target", b.c.Name)
		args := []string{"build", "--release", "--target", RustTarget}
		if spec.Arg != "" {
			args = append(args, "-p", spec.Arg)
		}
		if len(spec.Features) > 0 {
			args = append(args, "--features", strings.Join(spec.Features, ","))
		}
		if err := b.cmd(ctx, dir, []string{"CARGO_TARGET_DIR=" + target}, "cargo", args...); err != nil {
			return "", err
		}
		name := spec.Bin
		if name == "" {
			name = filepath.Base(b.c.InstallPath)
		}
		return filepath.Join(target, RustTarget, "release", name), nil
	case Go:
		pkg := spec.Arg
		if pkg == "" {
			pkg = "."
		}
		out := filepath.Join(b.opt.WorkDir, ".target", b.c.Name, filepath.Base(b.c.InstallPath))
		args := []string{"build", "-trimpath"}
		if b.c.Type == Local {
			// The stage fingerprints a local source by the files the
			// package reads (Inputs), not by the commit of the repository
			// around it: stamping that commit would make the binary differ
			// between an incremental and a clean build of the same files.
			args = append(args, "-buildvcs=false")
		}
		return out, b.cmd(ctx, dir, goEnv, "go", append(args, "-o", out, pkg)...)
	case Make:
		args := []string{"-j" + strconv.Itoa(max(b.opt.Jobs, 1))}
		if spec.Arg != "" {
			args = append(args, spec.Arg)
		}
		return filepath.Join(dir, spec.Bin), b.cmd(ctx, dir, nil, "make", args...)
	case Script:
		return b.script(ctx, dir)
	}
	// none: the source is the binary, or holds it at bin=.
	if st, err := os.Stat(src); err == nil && !st.IsDir() {
		return src, nil
	}
	if spec.Bin == "" {
		return b.findBinary(dir)
	}
	return filepath.Join(dir, spec.Bin), nil
}

// script runs a build script (relative to the project root) in the
// source directory; it must write the binary to $OUT. $BUILD_DIR is the
// component's own directory, kept between builds (for a compiler's
// incremental state), and $JOBS the parallelism it may use.
func (b *builder) script(ctx context.Context, dir string) (string, error) {
	script := b.scriptPath()
	buildDir := filepath.Join(b.opt.WorkDir, ".target", b.c.Name)
	out := filepath.Join(buildDir, filepath.Base(b.c.InstallPath))
	if err := os.MkdirAll(buildDir, 0o755); err != nil {
		return "", err
	}
	_ = os.Remove(out)
	env := []string{"OUT=" + out, "SRC=" + dir, "NAME=" + b.c.Name, "VERSION=" + b.c.Version,
		"BUILD_DIR=" + buildDir, "JOBS=" + strconv.Itoa(max(b.opt.Jobs, 1))}
	if err := b.cmd(ctx, dir, env, "sh", script); err != nil {
		return "", err
	}
	return out, nil
}

// scriptPath is the script of a script build, relative paths resolved
// against the project root.
func (b *builder) scriptPath() string {
	if filepath.IsAbs(b.c.Build.Arg) {
		return b.c.Build.Arg
	}
	return filepath.Join(b.opt.ProjectRoot, b.c.Build.Arg)
}

// findBinary looks in an extracted release for the one regular file named
// like INSTALL_PATH's base.
func (b *builder) findBinary(dir string) (string, error) {
	want := filepath.Base(b.c.InstallPath)
	var found []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() == want {
			found = append(found, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if len(found) != 1 {
		return "", fmt.Errorf("found %d files named %s in the release; name the binary with bin=PATH", len(found), want)
	}
	return found[0], nil
}

// cmd runs a build command in dir with its output going to the log.
func (b *builder) cmd(ctx context.Context, dir string, env []string, name string, args ...string) error {
	fmt.Fprintf(b.out, "$ (cd %s && %s %s %s)\n", dir, strings.Join(env, " "), name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), b.opt.Env...), env...)
	cmd.Stdout = b.out
	cmd.Stderr = b.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// git runs git in dir and returns its trimmed output.
func (b *builder) git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(&stderr, b.out)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// stage copies the built binary to the artifact path through a temporary
// file, so a half-copied binary never looks built.
func stage(bin, dst string) error {
	if err := fsutil.CopyFile(bin, dst, 0o755); err != nil {
		return fmt.Errorf("built binary: %w", err)
	}
	return nil
}
