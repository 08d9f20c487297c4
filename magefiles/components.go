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

// componentInputs are the local sources a component build reads (see
// components.Inputs). When they cannot be listed (go list failed) the
// reason goes into the stage's config, so the stage reruns and its build
// reports the real error.
func (e *env) componentInputs() (inputs []string, listErr string) {
	in, err := components.Inputs(context.Background(), e.cfg.Components, e.root)
	if err != nil {
		listErr = err.Error()
	}
	return append([]string{e.configFile(config.SourcesFile)}, in...), listErr
}

func componentsBuild(e *env) stage.Stage {
	inputs, listErr := e.componentInputs()
	cfg := e.values("JOBS")
	if listErr != "" {
		cfg["inputs unknown"] = listErr
	}
	return stage.Stage{
		Config: cfg,
		Inputs: inputs,
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
