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

// CheckZinit validates the units in zinit/ without building anything.
func (e *Env) CheckZinit(w io.Writer) error {
	set, err := zinit.LoadDir(filepath.Join(e.root, "zinit"))
	if err != nil {
		return err
	}
	for _, w := range set.Warnings {
		e.log.Warn(w)
	}
	fmt.Fprintf(w, "%d units, %d scripts: valid\n", len(set.Units), len(set.Scripts))
	return nil
}

func zinitSetup(e *Env) stage.Stage {
	src := filepath.Join(e.root, "zinit")
	return stage.Stage{
		Inputs:  []string{src},
		Outputs: []string{filepath.Join(e.cfg.InstallDir, zinit.ConfigDir)},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			set, err := zinit.Install(ctx, src, e.cfg.InstallDir)
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
