//go:build mage

package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/pkg/stage"
	"github.com/threefoldtech/zosbuilder/pkg/zinit"
)

// Zinit holds the zinit service-unit targets.
type Zinit mg.Namespace

// Setup validates zinit/*.yaml against zinit's own rules and installs them into INSTALL_DIR/etc/zinit (stage zinit_setup).
func (Zinit) Setup(ctx context.Context) error { return runStage(ctx, "zinit_setup") }

// Check validates the units in zinit/ (and the PROFILE's zinit/) without building anything.
func (Zinit) Check() error {
	e, err := load()
	if err != nil {
		return err
	}
	set, err := zinit.LoadDirs(e.unitDirs()...)
	if err != nil {
		return err
	}
	for _, w := range set.Warnings {
		e.log.Warn(w)
	}
	fmt.Printf("%d units, %d scripts: valid\n", len(set.Units), len(set.Scripts))
	return nil
}

// unitDirs are the zinit unit folders: zinit/, then the profile's
// config/profiles/<name>/zinit/ when it has one, whose units and scripts
// are added to the shipped ones (replacing those of the same name).
func (e *env) unitDirs() []string {
	dirs := []string{filepath.Join(e.root, "zinit")}
	if p := e.cfg.ProfileDir("zinit"); p != "" {
		dirs = append(dirs, p)
	}
	return dirs
}

func zinitSetup(e *env) stage.Stage {
	return stage.Stage{
		Inputs:  e.unitDirs(),
		Outputs: []string{filepath.Join(e.cfg.InstallDir, zinit.ConfigDir)},
		Run: func(ctx context.Context) error {
			set, err := zinit.InstallDirs(ctx, e.cfg.InstallDir, e.unitDirs()...)
			if err != nil {
				return err
			}
			for _, w := range set.Warnings {
				e.log.Warn(w)
			}
			e.log.Infof("installed %d zinit units and %d scripts", len(set.Units), len(set.Scripts))
			return nil
		},
	}
}
