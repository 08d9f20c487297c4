//go:build mage

package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/pkg/modules"
)

// Modules holds the kernel-module targets.
type Modules mg.Namespace

// Setup resolves config/modules.conf (stage1/stage2) to full dependency closures against the kernel's modules (stage modules_setup).
func (Modules) Setup(ctx context.Context) error { return runStage(ctx, "modules_setup") }

// Copy puts exactly the closures into INSTALL_DIR/lib/modules/<FULL_VERSION>, runs depmod and writes the load lists (stage modules_copy).
func (Modules) Copy(ctx context.Context) error { return runStage(ctx, "modules_copy") }

// Resolve prints the closure of MODULES (comma-separated) in ROOT/lib/modules/VERSION, dependencies first; built-ins as builtin:NAME.
func (Modules) Resolve(root, version, names string) error {
	c, err := modules.Resolve(root, version, strings.Split(names, ","), modules.Options{})
	if err != nil {
		return err
	}
	for _, l := range c.Lines() {
		fmt.Println(l)
	}
	return nil
}
