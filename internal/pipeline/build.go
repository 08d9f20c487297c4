package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/container"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// Build runs every stage, producing dist/vmlinuz.efi, on the host or, with
// CONTAINER_RUNTIME=podman|docker, inside the builder image.
func (e *Env) Build(ctx context.Context) error {
	if e.cfg.ContainerRuntime != "none" {
		return e.buildInContainer(ctx)
	}
	if err := e.Run(ctx, "kernel_build"); err != nil {
		return err
	}
	e.log.Infof("build complete: %s", filepath.Join(e.cfg.DistDir, "vmlinuz.efi"))
	return nil
}

// buildInContainer reruns `mage build` inside the builder image
// (CONTAINER_RUNTIME=podman|docker) with the repository mounted.
func (e *Env) buildInContainer(ctx context.Context) error {
	opt, err := e.containerOptions()
	if err != nil {
		return err
	}
	e.log.Infof("building inside the builder image with %s", opt.Runtime)
	return container.Run(ctx, opt, []string{"go", "run", "magefile.go", "build"})
}

// containerOptions describes the builder container: the environment it
// inherits, and a mount for each work folder outside the repository.
func (e *Env) containerOptions() (container.Options, error) {
	opt := container.Options{
		Runtime:     e.cfg.ContainerRuntime,
		ProjectRoot: e.root,
		Env:         []string{"FORCE", "PROFILE", "MAGEFILE_VERBOSE"},
		// Inside, the build runs on the container's host tools.
		Set:      []string{"CONTAINER_RUNTIME=none"},
		Terminal: isTerminal(os.Stdout),
	}
	// Config keys set in the environment keep overriding build.conf inside.
	for _, k := range e.cfg.Keys() {
		if k.Origin.Env && k.Name != "CONTAINER_RUNTIME" {
			opt.Env = append(opt.Env, k.Name)
		}
	}
	for _, d := range []string{e.cfg.InstallDir, e.cfg.ComponentsDir, e.cfg.KernelDir, e.cfg.DistDir, e.cfg.CacheDir, e.cfg.StateDir} {
		if !strings.HasPrefix(d, e.root+"/") {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return opt, err
			}
			opt.Mounts = append(opt.Mounts, d+":"+d)
		}
	}
	return opt, nil
}

// Status prints every stage's state: done, stale (and why), never run or failed.
func (e *Env) Status(w io.Writer) error {
	rows, err := e.engine.Status(e.stages())
	if err != nil {
		return err
	}
	return stage.PrintStatus(w, rows)
}

// Reset forgets a stage and everything after it, so the next build reruns them (build.sh --rebuild-from STAGE).
func (e *Env) Reset(stageName string) error {
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

// Clean removes the work folders, stage markers and dist/; with all, the
// download cache too.
func (e *Env) Clean(all bool) error {
	if err := e.engine.Lock(); err != nil {
		return err
	}
	dirs := []string{e.cfg.InstallDir, e.cfg.ComponentsDir, e.cfg.KernelDir, e.cfg.DistDir, e.cfg.StateDir}
	if all {
		dirs = append(dirs, e.cfg.CacheDir)
	}
	return removeAll(e, dirs...)
}

func removeAll(e *Env, dirs ...string) error {
	for _, d := range dirs {
		if _, err := os.Lstat(d); os.IsNotExist(err) {
			continue
		}
		e.log.Infof("removing %s", d)
		if err := fsutil.RemoveAll(d); err != nil {
			return fmt.Errorf("remove %s: %w", d, err)
		}
	}
	return nil
}

// PrintConfig prints every build.conf key with its effective value and where it came from.
func (e *Env) PrintConfig(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tFROM")
	for _, k := range e.cfg.Keys() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, k.Value, k.Origin)
	}
	if e.cfg.RFS != nil {
		fmt.Fprintf(tw, "rfs.conf\t%s (S3 %s, bucket %s)\t\n", e.cfg.RFS.File, e.cfg.RFS.Endpoint, e.cfg.RFS.Bucket)
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
func Graph(w io.Writer) {
	fmt.Fprintln(w, "```mermaid")
	fmt.Fprintln(w, "flowchart TD")
	for _, d := range pipeline() {
		fmt.Fprintf(w, "  %s[\"%s<br/><code>mage %s</code>\"]\n", d.name, d.name, d.target)
		for _, dep := range d.deps {
			fmt.Fprintf(w, "  %s --> %s\n", dep, d.name)
		}
	}
	fmt.Fprintln(w, "```")
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
