//go:build mage

package main

import (
	"context"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/internal/pipeline"
)

// stageTargets maps each stage to its mage target, for the mg.CtxDeps
// wiring; the order and dependencies come from the pipeline package's table.
func stageTargets() map[string]any {
	return map[string]any{
		"alpine_extract":    Alpine.Extract,
		"alpine_configure":  Alpine.Configure,
		"alpine_packages":   Alpine.Packages,
		"alpine_firmware":   Alpine.Firmware,
		"components_build":  Components.Build,
		"components_verify": Components.Verify,
		"kernel_modules":    Kernel.Modules,
		"init_script":       Initramfs.Init,
		"components_copy":   Components.Copy,
		"zinit_setup":       Zinit.Setup,
		"modules_setup":     Modules.Setup,
		"modules_copy":      Modules.Copy,
		"cleanup":           Initramfs.Cleanup,
		"validation":        Initramfs.Validate,
		"rfs_flists":        Rfs.Flists,
		"initramfs_create":  Initramfs.Create,
		"initramfs_test":    Initramfs.Test,
		"kernel_build":      Kernel.Build,
	}
}

// runStage runs a stage after the stages it depends on (through mg.CtxDeps,
// so each runs once per process and independent ones run in parallel).
func runStage(ctx context.Context, name string) error {
	deps, err := pipeline.Deps(name)
	if err != nil {
		return err
	}
	var targets []any
	for _, d := range deps {
		targets = append(targets, stageTargets()[d])
	}
	mg.CtxDeps(ctx, targets...)
	e, err := load()
	if err != nil {
		return err
	}
	return e.RunStage(ctx, name)
}
