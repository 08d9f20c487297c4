//go:build mage

package main

import (
	"context"

	"github.com/magefile/mage/mg"
)

// Components holds the targets for zinit, rfs, mycelium, corex and the other sources.conf components.
type Components mg.Namespace

// Build fetches (never discarding local changes) and builds every sources.conf component (stage components_build).
func (Components) Build(ctx context.Context) error { return runStage(ctx, "components_build") }

// Verify checks that every component binary is a static x86-64 executable (stage components_verify).
func (Components) Verify(ctx context.Context) error { return runStage(ctx, "components_verify") }

// Copy installs the component binaries into INSTALL_DIR at their INSTALL_PATH, stripped when ENABLE_STRIP (stage components_copy).
func (Components) Copy(ctx context.Context) error { return runStage(ctx, "components_copy") }
