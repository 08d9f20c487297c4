package pipeline

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/components"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/hosttools"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

func (e *Env) componentOptions(log logrus.FieldLogger) components.Options {
	return components.Options{
		WorkDir:     e.cfg.ComponentsDir,
		ProjectRoot: e.root,
		Jobs:        e.cfg.Jobs,
		Fetcher:     e.fetcher(log),
		Cache:       e.artifacts,
		Log:         log,
	}
}

// componentPaths lists the in-image paths of the component binaries.
func (e *Env) componentPaths() []string {
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
func (e *Env) componentInputs() (inputs []string, listErr string) {
	in, err := components.Inputs(context.Background(), e.cfg.Components, e.root)
	if err != nil {
		listErr = err.Error()
	}
	return append([]string{e.configFile(config.SourcesFile)}, in...), listErr
}

// componentArtifacts are the binaries components_build leaves for
// components_verify and components_copy.
func (e *Env) componentArtifacts() []string {
	opt := e.componentOptions(nil)
	var out []string
	for _, c := range e.cfg.Components {
		out = append(out, opt.Artifact(c))
	}
	return out
}

// componentTools are the programs the sources.conf entries need: git for
// git sources, and each build kind's compiler.
func (e *Env) componentTools() []hosttools.Tool {
	var tools []hosttools.Tool
	for _, c := range e.cfg.Components {
		if c.Type == components.Git {
			tools = append(tools, hosttools.Named("git")...)
		}
		tools = append(tools, hosttools.ForBuild(c.Build.Kind)...)
	}
	return tools
}

// stripTools is strip when ENABLE_STRIP asks for it.
func (e *Env) stripTools() []hosttools.Tool {
	if !e.cfg.EnableStrip {
		return nil
	}
	return hosttools.Named("strip")
}

func componentsBuild(e *Env) stage.Stage {
	inputs, listErr := e.componentInputs()
	cfg := e.values("JOBS")
	if listErr != "" {
		cfg["inputs unknown"] = listErr
	}
	return stage.Stage{
		Config:  cfg,
		Inputs:  inputs,
		Outputs: e.componentArtifacts(),
		Tools:   e.componentTools(),
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			return components.Build(ctx, e.cfg.Components, e.componentOptions(log))
		},
	}
}

func componentsVerify(e *Env) stage.Stage {
	return stage.Stage{
		Inputs: []string{e.configFile(config.SourcesFile)},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			return components.Verify(e.cfg.Components, e.componentOptions(log))
		},
	}
}

func componentsCopy(e *Env) stage.Stage {
	return stage.Stage{
		Config:  e.values("ENABLE_STRIP"),
		Inputs:  []string{e.configFile(config.SourcesFile)},
		Outputs: e.inImage(e.componentPaths()...),
		Tools:   e.stripTools(),
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			return components.Copy(ctx, e.cfg.Components, e.cfg.InstallDir, e.cfg.EnableStrip, e.componentOptions(log))
		},
	}
}
