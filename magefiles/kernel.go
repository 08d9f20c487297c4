//go:build mage

package main

import (
	"context"
	"fmt"

	"github.com/magefile/mage/mg"
)

// Kernel holds the kernel targets.
type Kernel mg.Namespace

// Modules fetches and verifies the kernel source, applies config/kernel.config and builds and installs the modules (stage kernel_modules).
func (Kernel) Modules(ctx context.Context) error { return runStage(ctx, "kernel_modules") }

// Build builds bzImage with the initramfs embedded into dist/vmlinuz.efi and proves it carries the fresh build id (stage kernel_build).
func (Kernel) Build(ctx context.Context) error { return runStage(ctx, "kernel_build") }

// FullVersion prints KERNEL_VERSION + CONFIG_LOCALVERSION, the /lib/modules name (never uname -r).
func (Kernel) FullVersion(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	full, err := e.FullVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Println(full)
	return nil
}
