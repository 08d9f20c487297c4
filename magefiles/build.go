//go:build mage

package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/magefile/mage/mg"
	"golang.org/x/term"

	"github.com/threefoldtech/zosbuilder/pkg/container"
	"github.com/threefoldtech/zosbuilder/pkg/hosttools"

	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// Default is what a bare `mage` runs.
var Default = Build

// Aliases keep the original stage vocabulary at hand.
var Aliases = map[string]any{
	"clean:all": CleanAll,
}

// Build runs every stage and produces dist/vmlinuz.efi (FORCE=1 reruns all, PROFILE=name selects config/profiles/name).
func Build(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	if e.cfg.ContainerRuntime != "none" {
		return e.buildInContainer(ctx)
	}
	if err := hosttools.Check(e.hostTools()); err != nil {
		return err
	}
	mg.CtxDeps(ctx, Kernel.Build)
	e.log.Infof("build complete: %s", filepath.Join(e.cfg.DistDir, "vmlinuz.efi"))
	return nil
}

// hostTools lists the programs the stages and component build kinds need,
// checked before any stage runs so a missing one fails the build at once.
func (e *env) hostTools() []hosttools.Tool {
	var tools []hosttools.Tool
	for _, d := range pipeline() {
		if d.name == "kernel_modules" && e.cfg.KernelModulesDir != "" {
			continue
		}
		tools = append(tools, hosttools.ForStage(d.name)...)
	}
	for _, c := range e.cfg.Components {
		tools = append(tools, hosttools.ForBuild(c.Build.Kind)...)
	}
	if c := e.cfg.Cache; c != nil && c.CompileCache != "off" && e.cfg.KernelModulesDir == "" {
		tools = append(tools, hosttools.ForCompileCache()...)
	}
	return tools
}

// buildInContainer reruns `mage build` inside the builder image
// (CONTAINER_RUNTIME=podman|docker) with the repository mounted.
func (e *env) buildInContainer(ctx context.Context) error {
	opt := container.Options{
		Runtime:     e.cfg.ContainerRuntime,
		ProjectRoot: e.root,
		Env:         []string{"CONTAINER_RUNTIME", "FORCE", "PROFILE", "MAGEFILE_VERBOSE"},
		Terminal:    isTerminal(os.Stdout),
	}
	// Config keys set in the environment keep overriding build.conf inside.
	for _, k := range e.cfg.Keys() {
		if k.Origin.Env {
			opt.Env = append(opt.Env, k.Name)
		}
	}
	for _, d := range []string{e.cfg.InstallDir, e.cfg.ComponentsDir, e.cfg.KernelDir, e.cfg.DistDir, e.cfg.CacheDir, e.cfg.StateDir} {
		if !strings.HasPrefix(d, e.root+"/") {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			opt.Mounts = append(opt.Mounts, d+":"+d)
		}
	}
	// Inside, the build runs on the container's host tools.
	os.Setenv("CONTAINER_RUNTIME", "none")
	e.log.Infof("building inside the builder image with %s", opt.Runtime)
	return container.Run(ctx, opt, []string{"go", "run", "magefile.go", "build"})
}

// Status prints every stage's state: done, stale (and why), never run or failed.
func Status() error {
	e, err := load()
	if err != nil {
		return err
	}
	rows, err := e.engine.Status(e.stages())
	if err != nil {
		return err
	}
	return stage.PrintStatus(os.Stdout, rows)
}

// Reset forgets a stage and everything after it, so the next build reruns them (build.sh --rebuild-from STAGE).
func Reset(stageName string) error {
	e, err := load()
	if err != nil {
		return err
	}
	def, err := findStage(stageName)
	if err != nil {
		return err
	}
	forgot, err := e.engine.Reset(e.stages(), def.name)
	if err != nil {
		return err
	}
	e.log.Infof("forgot %s; the next build reruns them", strings.Join(forgot, ", "))
	return nil
}

// Clean removes the work folders, stage markers and dist/ (the download cache stays; see clean:all).
func Clean() error {
	e, err := load()
	if err != nil {
		return err
	}
	if err := e.engine.Lock(); err != nil {
		return err
	}
	return removeAll(e, e.cfg.InstallDir, e.cfg.ComponentsDir, e.cfg.KernelDir, e.cfg.DistDir, e.cfg.StateDir)
}

// CleanAll is clean plus the download cache (mage clean:all).
func CleanAll() error {
	mg.Deps(Clean)
	e, err := load()
	if err != nil {
		return err
	}
	return removeAll(e, e.cfg.CacheDir)
}

func removeAll(e *env, dirs ...string) error {
	for _, d := range dirs {
		if _, err := os.Lstat(d); os.IsNotExist(err) {
			continue
		}
		e.log.Infof("removing %s", d)
		if err := makeWritable(d); err != nil {
			return err
		}
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove %s: %w", d, err)
		}
	}
	return nil
}

// Config prints every build.conf key with its effective value and where it came from.
func Config() error {
	e, err := load()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tFROM")
	for _, k := range e.cfg.Keys() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, k.Value, k.Origin)
	}
	if e.cfg.RFS != nil {
		fmt.Fprintf(tw, "rfs.conf\t%s (S3 %s, bucket %s)\t\n", e.cfg.RFS.File, e.cfg.RFS.S3Endpoint, e.cfg.RFS.S3Bucket)
	} else {
		fmt.Fprintf(tw, "rfs.conf\tnone: flists go to a local dir:// store\t\n")
	}
	if c := e.cfg.Cache; c != nil {
		fmt.Fprintf(tw, "cache.conf\t%s (artifacts %s, compile cache %s)\t\n", c.File, c.URL, c.CompileCache)
	} else {
		fmt.Fprintf(tw, "cache.conf\tnone: nothing is shared between machines\t\n")
	}
	return tw.Flush()
}

// Graph prints the stage graph as Mermaid, generated from the pipeline table (for the README).
func Graph() error {
	fmt.Println("```mermaid")
	fmt.Println("flowchart TD")
	for _, d := range pipeline() {
		fmt.Printf("  %s[\"%s<br/><code>mage %s</code>\"]\n", d.name, d.name, targetName(d.target))
		for _, dep := range d.deps {
			fmt.Printf("  %s --> %s\n", dep, d.name)
		}
	}
	fmt.Println("```")
	return nil
}

// targetName turns a target function into its mage name: Alpine.Extract -> alpine:extract.
func targetName(fn any) string {
	full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	full = strings.TrimPrefix(full, "main.")
	full = strings.TrimSuffix(full, "-fm")
	return strings.ToLower(strings.ReplaceAll(full, ".", ":"))
}

// makeWritable gives the owner write permission on every folder under dir,
// so RemoveAll can delete trees that tools made read-only (Go's module
// cache inside a component build, extracted archives).
func makeWritable(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Mode().Perm()&0o200 == 0 {
			return os.Chmod(p, info.Mode().Perm()|0o700)
		}
		return nil
	})
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
