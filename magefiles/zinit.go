//go:build mage

package main

import (
	"context"
	"os"

	"github.com/magefile/mage/mg"
)

// Zinit holds the zinit service-unit targets.
type Zinit mg.Namespace

// Setup validates zinit/*.yaml against zinit's own rules and installs them into INSTALL_DIR/etc/zinit (stage zinit_setup).
func (Zinit) Setup(ctx context.Context) error { return runStage(ctx, "zinit_setup") }

// Check validates the units in zinit/ without building anything.
func (Zinit) Check() error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.CheckZinit(os.Stdout)
}
