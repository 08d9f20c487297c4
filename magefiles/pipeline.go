//go:build mage

package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// stageDef ties an original build.sh stage to its mage target, the stages
// it needs first, and what it reads and does (spec). The table in pipeline()
// is the one description of the build's order: mg.Deps follows it, the stage
// engine fingerprints along it, and `mage graph` draws it.
type stageDef struct {
	name   string
	target any // the mage target function
	deps   []string
	spec   func(e *env) stage.Stage
}

// pipeline lists the stages in the original order. Stages whose deps do not
// overlap run in parallel under mg.Deps: the Alpine chain, the component
// builds and the kernel modules build.
func pipeline() []stageDef {
	return []stageDef{
		{"alpine_extract", Alpine.Extract, nil, alpineExtract},
		{"alpine_configure", Alpine.Configure, []string{"alpine_extract"}, alpineConfigure},
		{"alpine_packages", Alpine.Packages, []string{"alpine_configure"}, alpinePackages},
		{"alpine_firmware", Alpine.Firmware, []string{"alpine_packages"}, alpineFirmware},
		{"components_build", Components.Build, nil, componentsBuild},
		{"components_verify", Components.Verify, []string{"components_build"}, componentsVerify},
		{"kernel_modules", Kernel.Modules, nil, kernelModules},
		{"init_script", Initramfs.Init, []string{"alpine_firmware"}, initScript},
		{"components_copy", Components.Copy, []string{"init_script", "components_verify"}, componentsCopy},
		{"zinit_setup", Zinit.Setup, []string{"components_copy"}, zinitSetup},
		{"modules_setup", Modules.Setup, []string{"zinit_setup", "kernel_modules"}, modulesSetup},
		{"modules_copy", Modules.Copy, []string{"modules_setup"}, modulesCopy},
		{"cleanup", Initramfs.Cleanup, []string{"modules_copy"}, cleanup},
		{"validation", Initramfs.Validate, []string{"cleanup"}, validation},
		{"rfs_flists", Rfs.Flists, []string{"validation"}, rfsFlists},
		{"initramfs_create", Initramfs.Create, []string{"rfs_flists"}, initramfsCreate},
		{"initramfs_test", Initramfs.Test, []string{"initramfs_create"}, initramfsTest},
		{"kernel_build", Kernel.Build, []string{"initramfs_test"}, kernelBuild},
	}
}

func findStage(name string) (stageDef, error) {
	want := normalizeStageName(name)
	var names []string
	for _, d := range pipeline() {
		if d.name == want || targetName(d.target) == strings.ToLower(name) {
			return d, nil
		}
		names = append(names, d.name)
	}
	return stageDef{}, fmt.Errorf("unknown stage %q; stages are: %s", name, strings.Join(names, ", "))
}

// normalizeStageName accepts the original names with '-' too.
func normalizeStageName(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "-", "_")
}

// runStage runs a stage after the stages it depends on (through mg.CtxDeps,
// so each runs once per process and independent ones run in parallel).
func runStage(ctx context.Context, name string) error {
	def, err := findStage(name)
	if err != nil {
		return err
	}
	var deps []any
	for _, d := range def.deps {
		dep, err := findStage(d)
		if err != nil {
			return err
		}
		deps = append(deps, dep.target)
	}
	mg.CtxDeps(ctx, deps...)
	e, err := load()
	if err != nil {
		return err
	}
	return redact(e.engine.Run(ctx, def.stage(e)))
}

func (d stageDef) stage(e *env) stage.Stage {
	s := d.spec(e)
	s.Name, s.Deps = d.name, d.deps
	return s
}

// stages returns every stage's spec, in order, for status and reset.
func (e *env) stages() []stage.Stage {
	var out []stage.Stage
	for _, d := range pipeline() {
		out = append(out, d.stage(e))
	}
	return out
}
