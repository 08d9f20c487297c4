package pipeline

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/components"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

func (e *Env) componentOptions(log logrus.FieldLogger) components.Options {
	return components.Options{
		WorkDir:     e.cfg.ComponentsDir,
		ProjectRoot: e.root,
		Jobs:        e.cfg.Jobs,
		Fetcher:     e.fetcher(log),
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

// componentInputs are the local sources a component build reads. Remote git
// and release sources are pinned by their line in sources.conf.
func (e *Env) componentInputs() []string {
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

func componentsBuild(e *Env) stage.Stage {
	return stage.Stage{
		Config: e.values("JOBS"),
		Inputs: e.componentInputs(),
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
		Config: e.values("ENABLE_STRIP"),
		Inputs: []string{e.configFile(config.SourcesFile)},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			return components.Copy(ctx, e.cfg.Components, e.cfg.InstallDir, e.cfg.EnableStrip, e.componentOptions(log))
		},
	}
}
