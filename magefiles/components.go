//go:build mage

package main

import (
	"context"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/pkg/components"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// Components holds the targets for zinit, rfs, mycelium, corex and the other sources.conf components.
type Components mg.Namespace

// Build fetches (never discarding local changes) and builds every sources.conf component (stage components_build).
func (Components) Build(ctx context.Context) error { return runStage(ctx, "components_build") }

// Verify checks that every component binary is a static x86-64 executable (stage components_verify).
func (Components) Verify(ctx context.Context) error { return runStage(ctx, "components_verify") }

// Copy installs the component binaries into INSTALL_DIR at their INSTALL_PATH, stripped when ENABLE_STRIP (stage components_copy).
func (Components) Copy(ctx context.Context) error { return runStage(ctx, "components_copy") }

func (e *env) componentOptions() components.Options {
	return components.Options{
		WorkDir:     e.cfg.ComponentsDir,
		ProjectRoot: e.root,
		Jobs:        e.cfg.Jobs,
		Fetcher:     e.fetcher(),
		Cache:       e.artifacts,
		Log:         e.log,
	}
}

// componentPaths lists the in-image paths of the component binaries.
func (e *env) componentPaths() []string {
	var out []string
	for _, c := range e.cfg.Components {
		out = append(out, c.InstallPath)
	}
	return out
}

// componentInputs are the local sources a component build reads. Remote git
// and release sources are pinned by their line in sources.conf.
func (e *env) componentInputs() []string {
	in := []string{e.configFile(config.SourcesFile)}
	for _, c := range e.cfg.Components {
		if c.Type == components.Local {
			in = append(in, e.resolve(c.Source))
		}
		if c.Build.Kind == components.Script {
			in = append(in, e.resolve(c.Build.Arg))
		}
	}
	return in
}

func componentsBuild(e *env) stage.Stage {
	return stage.Stage{
		Config: e.values("JOBS"),
		Inputs: e.componentInputs(),
		Run: func(ctx context.Context) error {
			return components.Build(ctx, e.cfg.Components, e.componentOptions())
		},
	}
}

func componentsVerify(e *env) stage.Stage {
	return stage.Stage{
		Inputs: []string{e.configFile(config.SourcesFile)},
		Run: func(ctx context.Context) error {
			return components.Verify(e.cfg.Components, e.componentOptions())
		},
	}
}

func componentsCopy(e *env) stage.Stage {
	return stage.Stage{
		Config: e.values("ENABLE_STRIP"),
		Inputs: []string{e.configFile(config.SourcesFile)},
		Run: func(ctx context.Context) error {
			return components.Copy(ctx, e.cfg.Components, e.cfg.InstallDir, e.cfg.EnableStrip, e.componentOptions())
		},
	}
}
