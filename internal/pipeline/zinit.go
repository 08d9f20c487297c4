package pipeline

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/stage"
	"github.com/threefoldtech/zosbuilder/pkg/zinit"
)

// CheckZinit validates the units in zinit/ (and the profile's zinit/)
// without building anything.
func (e *Env) CheckZinit(w io.Writer) error {
	set, err := zinit.LoadDirs(e.unitDirs()...)
	if err != nil {
		return err
	}
	for _, w := range set.Warnings {
		e.log.Warn(w)
	}
	fmt.Fprintf(w, "%d units, %d scripts: valid\n", len(set.Units), len(set.Scripts))
	return nil
}

// unitDirs are the zinit unit folders: zinit/, then the profile's
// config/profiles/<name>/zinit/ when it has one, whose units and scripts
// are added to the shipped ones (replacing those of the same name).
func (e *Env) unitDirs() []string {
	dirs := []string{filepath.Join(e.root, "zinit")}
	if p := e.cfg.ProfileDir("zinit"); p != "" {
		dirs = append(dirs, p)
	}
	return dirs
}

func zinitSetup(e *Env) stage.Stage {
	return stage.Stage{
		Inputs:  e.unitDirs(),
		Outputs: []string{filepath.Join(e.cfg.InstallDir, zinit.ConfigDir)},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			set, err := zinit.InstallDirs(ctx, e.cfg.InstallDir, e.unitDirs()...)
			if err != nil {
				return err
			}
			for _, w := range set.Warnings {
				log.Warn(w)
			}
			log.Infof("installed %d zinit units and %d scripts", len(set.Units), len(set.Scripts))
			return nil
		},
	}
}
