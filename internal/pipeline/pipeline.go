// Package pipeline is the Zero-OS build as configured: the table of stages
// (the original build.sh's, in order, with their mage targets and what each
// needs first), each stage's spec for the stage engine (what it reads,
// writes, needs on the host and does), and the glue that turns config/ into
// the options of the packages that do the work. It does not import mage:
// magefiles/ holds thin targets that load an Env and call it, and the tests
// check every stage's spec without running a build.
package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// stageDef ties an original build.sh stage to its mage target, the stages
// it needs first, and what it reads, writes, runs and does (spec). The table
// in pipeline() is the one description of the build's order: the stage
// engine schedules and fingerprints along it, and `mage graph` draws it.
type stageDef struct {
	name   string
	target string // the mage target that runs the stage, as mage -l names it
	deps   []string
	spec   func(e *Env) stage.Stage
}

// pipeline lists the stages in the original order. Stages whose deps do not
// overlap run in parallel (stage.Engine.RunGraph): the Alpine chain, the
// component builds and the kernel modules build.
func pipeline() []stageDef {
	return []stageDef{
		{"alpine_extract", "alpine:extract", nil, alpineExtract},
		{"alpine_configure", "alpine:configure", []string{"alpine_extract"}, alpineConfigure},
		{"alpine_packages", "alpine:packages", []string{"alpine_configure"}, alpinePackages},
		{"alpine_firmware", "alpine:firmware", []string{"alpine_packages"}, alpineFirmware},
		{"components_build", "components:build", nil, componentsBuild},
		{"components_verify", "components:verify", []string{"components_build"}, componentsVerify},
		{"kernel_modules", "kernel:modules", nil, kernelModules},
		{"init_script", "initramfs:init", []string{"alpine_firmware"}, initScript},
		{"components_copy", "components:copy", []string{"init_script", "components_verify"}, componentsCopy},
		{"zinit_setup", "zinit:setup", []string{"components_copy"}, zinitSetup},
		{"modules_setup", "modules:setup", []string{"zinit_setup", "kernel_modules"}, modulesSetup},
		{"modules_copy", "modules:copy", []string{"modules_setup"}, modulesCopy},
		{"cleanup", "initramfs:cleanup", []string{"modules_copy"}, cleanup},
		{"validation", "initramfs:validate", []string{"cleanup"}, validation},
		{"rfs_flists", "rfs:flists", []string{"validation"}, rfsFlists},
		{"initramfs_create", "initramfs:create", []string{"rfs_flists"}, initramfsCreate},
		{"initramfs_test", "initramfs:test", []string{"initramfs_create"}, initramfsTest},
		{"kernel_build", "kernel:build", []string{"initramfs_test"}, kernelBuild},
	}
}

// StageTargets maps each stage to the mage target that runs it.
func StageTargets() map[string]string {
	m := map[string]string{}
	for _, d := range pipeline() {
		m[d.name] = d.target
	}
	return m
}

func findStage(name string) (stageDef, error) {
	want := normalizeStageName(name)
	var names []string
	for _, d := range pipeline() {
		if d.name == want || strings.ToLower(d.target) == strings.ToLower(name) {
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

// Run runs the named stages (or their mage targets, e.g. kernel:modules)
// after every stage they depend on, each once, independent ones in
// parallel. The first stage that fails stops the others; the error names it.
func (e *Env) Run(ctx context.Context, names ...string) error {
	goals := make([]string, len(names))
	for i, n := range names {
		def, err := findStage(n)
		if err != nil {
			return err
		}
		goals[i] = def.name
	}
	return e.redact(e.engine.RunGraph(ctx, e.stages(), goals...))
}

func (d stageDef) stage(e *Env) stage.Stage {
	s := d.spec(e)
	s.Name, s.Deps = d.name, d.deps
	return s
}

// stages returns every stage's spec, in order, for status and reset.
func (e *Env) stages() []stage.Stage {
	var out []stage.Stage
	for _, d := range pipeline() {
		out = append(out, d.stage(e))
	}
	return out
}
