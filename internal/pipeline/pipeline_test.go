package pipeline

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
	"github.com/threefoldtech/zosbuilder/pkg/kernel"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// project copies the repository's config/ into a temporary project root, so
// the tests read the shipped configuration and write nothing in the work
// tree. withRFS adds config/rfs.conf from the example.
func project(t *testing.T, withRFS bool) string {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(filepath.Join(root, "config"), os.DirFS(filepath.Join("..", "..", "config"))); err != nil {
		t.Fatal(err)
	}
	if withRFS {
		b, err := os.ReadFile(filepath.Join(root, "config", "rfs.conf.example"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "config", config.RFSConfFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// load opens the pipeline on root with only the given environment.
func load(t *testing.T, root string, environ ...string) *Env {
	t.Helper()
	e, err := Load(Options{Root: root, Environ: environ, LogOut: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.engine.Close() })
	return e
}

// variant is one configuration every stage spec is checked under.
type variant struct {
	name    string
	rfs     bool
	environ func(t *testing.T) []string
}

func variants() []variant {
	return []variant{
		{"default", false, func(*testing.T) []string { return nil }},
		{"rfs.conf", true, func(*testing.T) []string { return nil }},
		{"offline profile", false, func(t *testing.T) []string {
			tarball := filepath.Join(t.TempDir(), "linux.tar.xz")
			os.WriteFile(tarball, nil, 0o644)
			return []string{"PROFILE=offline", "KERNEL_SOURCE_TARBALL=" + tarball}
		}},
		{"prebuilt modules, no strip, no rfs", false, func(t *testing.T) []string {
			return []string{"KERNEL_MODULES_DIR=" + t.TempDir(), "ENABLE_STRIP=false", "ENABLE_RFS=false"}
		}},
	}
}

// specs builds every stage's spec; a spec naming a config key that does not
// exist panics in Env.values, which fails the test with the stage's name.
func specs(t *testing.T, e *Env) map[string]stage.Stage {
	t.Helper()
	out := map[string]stage.Stage{}
	for _, d := range pipeline() {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("stage %s: %v", d.name, r)
				}
			}()
			out[d.name] = d.stage(e)
		}()
	}
	return out
}

// These stages only read: they check what others wrote, or change
// INSTALL_DIR in place (cleanup leaves the absence of files). Every other
// stage must declare what it writes, so deleting it by hand reruns the stage.
var writesNothingOfItsOwn = []string{"components_verify", "cleanup", "validation", "initramfs_test"}

func TestEveryStageSpec(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			e := load(t, project(t, v.rfs), v.environ(t)...)
			all := specs(t, e)
			workDirs := []string{e.cfg.InstallDir, e.cfg.ComponentsDir, e.cfg.KernelDir, e.cfg.DistDir, e.cfg.StateDir}
			seen := map[string]bool{}
			for _, d := range pipeline() {
				s := all[d.name]
				for _, dep := range d.deps {
					if !seen[dep] {
						t.Errorf("stage %s: dependency %s is not listed before it", d.name, dep)
					}
				}
				seen[d.name] = true
				if ns, name, ok := strings.Cut(d.target, ":"); !ok || ns == "" || name == "" {
					t.Errorf("stage %s: target %q is not namespace:name", d.name, d.target)
				}

				optional := (d.name == "kernel_modules" && e.cfg.KernelModulesDir != "") ||
					(d.name == "rfs_flists" && !e.cfg.EnableRFS) ||
					(d.name == "alpine_firmware" && len(e.cfg.FirmwareNames()) == 0)
				switch {
				case slices.Contains(writesNothingOfItsOwn, d.name):
					if len(s.Outputs) > 0 {
						t.Errorf("stage %s declares outputs %v; take it off the read-only list", d.name, s.Outputs)
					}
				case len(s.Outputs) == 0 && !optional:
					t.Errorf("stage %s writes files but declares no outputs: deleting them would not rerun it", d.name)
				}
				for _, out := range s.Outputs {
					if !slices.ContainsFunc(workDirs, func(w string) bool { return strings.HasPrefix(out, w+"/") || out == w }) {
						t.Errorf("stage %s: output %s is not under a work folder %v", d.name, out, workDirs)
					}
				}
				for _, tool := range s.Tools {
					if tool.Name == "" || tool.Debian == "" || tool.Alpine == "" {
						t.Errorf("stage %s: tool %+v has no package to name when it is missing", d.name, tool)
					}
				}
			}
		})
	}
}

func toolNames(s stage.Stage) []string {
	var names []string
	for _, t := range s.Tools {
		names = append(names, t.Name)
	}
	return names
}

func TestStageTools(t *testing.T) {
	e := load(t, project(t, false))
	all := specs(t, e)
	want := map[string][]string{
		"components_build": {"git", "cargo", "cc"}, // sources.conf: git sources built with cargo-musl
		"components_copy":  {"strip"},
		"kernel_modules":   {"make", "cc", "flex", "bison", "bc", "perl", "depmod"},
		"kernel_build":     {"make", "cc", "flex", "bison", "bc", "perl"},
		"modules_copy":     {"depmod"},
		"cleanup":          {"strip"},
	}
	for name, s := range all {
		got := toolNames(s)
		for _, w := range want[name] {
			if !slices.Contains(got, w) {
				t.Errorf("stage %s: tools %v lack %s", name, got, w)
			}
		}
		if want[name] == nil && len(got) > 0 {
			t.Errorf("stage %s needs no host tool, declares %v", name, got)
		}
	}

	// A prebuilt modules tree builds nothing; without ENABLE_STRIP nothing
	// is stripped.
	e = load(t, project(t, false), "KERNEL_MODULES_DIR="+t.TempDir(), "ENABLE_STRIP=false")
	all = specs(t, e)
	for _, name := range []string{"kernel_modules", "components_copy", "cleanup"} {
		if got := toolNames(all[name]); len(got) > 0 {
			t.Errorf("stage %s: tools %v although nothing needs them", name, got)
		}
	}
}

// noopStages are e's stages, each standing in for its work: it creates
// the stage's outputs and counts the run in ran.
func noopStages(e *Env, ran *sync.Map) []stage.Stage {
	var stages []stage.Stage
	for _, s := range e.stages() {
		s.Tools = nil
		s.Run = func(context.Context, logrus.FieldLogger) error {
			ran.Store(s.Name, true)
			for _, o := range s.Outputs {
				if err := os.MkdirAll(o, 0o755); err != nil {
					return err
				}
			}
			return nil
		}
		stages = append(stages, s)
	}
	return stages
}

// Deleting a stage's output by hand reruns that stage and what follows it;
// components_build and rfs_flists used to declare none.
func TestDeletedOutputMakesStageStale(t *testing.T) {
	root := project(t, false)
	e := load(t, root)
	var ran sync.Map
	stages := noopStages(e, &ran)
	if err := e.engine.RunGraph(context.Background(), stages, "kernel_build"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		stage  string
		delete string
	}{
		{"rfs_flists", filepath.Join(e.cfg.DistDir, "flists")},
		{"components_build", filepath.Join(e.cfg.ComponentsDir, ".out", "zinit")},
		{"components_copy", filepath.Join(e.cfg.InstallDir, "sbin", "zinit")},
		{"modules_copy", filepath.Join(e.cfg.InstallDir, "etc", "zero-os", "modules-stage1.list")},
	} {
		t.Run(tt.stage, func(t *testing.T) {
			if err := os.RemoveAll(tt.delete); err != nil {
				t.Fatal(err)
			}
			rows, err := e.engine.Status(stages)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if r.Name == tt.stage && (r.State != stage.Stale || !strings.Contains(r.Why, "is missing")) {
					t.Errorf("after deleting %s: %s is %s (%s)", tt.delete, r.Name, r.State, r.Why)
				}
				if r.Name == "kernel_build" && r.State != stage.Stale {
					t.Errorf("kernel_build is %s after %s's output was deleted", r.State, tt.stage)
				}
			}
			// Rebuild: the stage and what follows it rerun, nothing before.
			ran.Clear()
			if err := e.engine.RunGraph(context.Background(), stages, "kernel_build"); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]bool{tt.stage: true, "kernel_build": true, "alpine_extract": false, "kernel_modules": false} {
				if _, got := ran.Load(name); got != want {
					t.Errorf("rebuild: %s ran = %v, want %v", name, got, want)
				}
			}
		})
	}
}

func TestFirmwareTag(t *testing.T) {
	for _, tt := range []struct {
		environ []string
		want    string
	}{
		{[]string{"FIRMWARE_TAG=v3", "SOURCE_DATE_EPOCH=1700000000"}, "v3"},
		{[]string{"FIRMWARE_TAG=", "SOURCE_DATE_EPOCH=1700000000"}, "20231114"},
	} {
		if got := load(t, project(t, false), tt.environ...).firmwareTag(); got != tt.want {
			t.Errorf("%v: firmwareTag = %q, want %q", tt.environ, got, tt.want)
		}
	}
}

func routeURL(s store.Store) string {
	if r := s.Routes(); len(r) == 1 {
		return r[0].URL
	}
	return ""
}

func TestPackOptions(t *testing.T) {
	e := load(t, project(t, false))
	opt, err := e.packOptions(e.log)
	if err != nil {
		t.Fatal(err)
	}
	// Without rfs.conf: the local store, routed to LOCAL_STORE_ROUTE (the
	// same in every work tree), or to itself when that is empty.
	if want := "dir://" + filepath.Join(e.cfg.DistDir, "flists", "store"); routeURL(opt.Store) != want ||
		len(opt.RouteOverride) != 1 || opt.RouteOverride[0].URL != "http://10.0.2.100/" {
		t.Errorf("without rfs.conf: store %s route %v, want the local %s routed to http://10.0.2.100/", routeURL(opt.Store), opt.RouteOverride, want)
	}
	// The flists' times are SOURCE_DATE_EPOCH; what lets the next pack
	// skip unchanged files is kept with the state, not in dist.
	fl := filepath.Join(e.flistDir(), "modules.fl")
	if idx := e.reuseIndex(fl); !strings.HasPrefix(idx, e.cfg.StateDir+"/") || strings.HasPrefix(idx, e.cfg.DistDir+"/") {
		t.Errorf("reuse index %s: want it under STATE_DIR %s, not DIST_DIR", idx, e.cfg.StateDir)
	}
	if e = load(t, project(t, false), "SOURCE_DATE_EPOCH=1700000000"); e.cfg.SourceDateEpoch == nil {
		t.Fatal("SOURCE_DATE_EPOCH not read")
	}
	if opt, err = e.packOptions(e.log); err != nil || opt.Time == nil || *opt.Time != 1700000000 {
		t.Errorf("SOURCE_DATE_EPOCH=1700000000: pack Time %v, %v", opt.Time, err)
	}
	e = load(t, project(t, false), "LOCAL_STORE_ROUTE=dir:///srv/zos/store")
	if opt, err = e.packOptions(e.log); err != nil || len(opt.RouteOverride) != 1 || opt.RouteOverride[0].URL != "dir:///srv/zos/store" {
		t.Errorf("LOCAL_STORE_ROUTE=dir:///srv/zos/store: route %v, %v", opt.RouteOverride, err)
	}

	e = load(t, project(t, true))
	opt, err = e.packOptions(e.log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(routeURL(opt.Store), "s3.example.com:3900") {
		t.Errorf("with rfs.conf: store %s", routeURL(opt.Store))
	}
	if len(opt.RouteOverride) != 1 || !strings.Contains(opt.RouteOverride[0].URL, "read-only-access-key") {
		t.Errorf("with rfs.conf: route %v, want the read-only credentials", opt.RouteOverride)
	}
	if opt.Parallel != e.cfg.RFSJobs || opt.Progress == nil {
		t.Errorf("options %+v", opt)
	}
}

// The builder container gets CONTAINER_RUNTIME=none and the config keys set
// in the environment, without the process's own environment changing.
func TestContainerOptions(t *testing.T) {
	t.Setenv("CONTAINER_RUNTIME", "podman")
	outside := t.TempDir()
	e := load(t, project(t, false), "CONTAINER_RUNTIME=podman", "JOBS=3", "CACHE_DIR="+outside)
	opt, err := e.containerOptions()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(opt.Set, "CONTAINER_RUNTIME=none") || slices.Contains(opt.Env, "CONTAINER_RUNTIME") {
		t.Errorf("Set %v Env %v: the container must get CONTAINER_RUNTIME=none", opt.Set, opt.Env)
	}
	for _, k := range []string{"JOBS", "CACHE_DIR", "PROFILE", "FORCE"} {
		if !slices.Contains(opt.Env, k) {
			t.Errorf("Env %v lacks %s", opt.Env, k)
		}
	}
	if !slices.Contains(opt.Mounts, outside+":"+outside) {
		t.Errorf("Mounts %v lack the CACHE_DIR outside the repository", opt.Mounts)
	}
	if got := os.Getenv("CONTAINER_RUNTIME"); got != "podman" {
		t.Errorf("the process's CONTAINER_RUNTIME became %q", got)
	}
}

func TestFindStage(t *testing.T) {
	for _, name := range []string{"rfs_flists", "rfs-flists", "rfs:flists", "RFS:Flists"} {
		if d, err := findStage(name); err != nil || d.name != "rfs_flists" {
			t.Errorf("findStage(%q) = %v, %v", name, d.name, err)
		}
	}
	if _, err := findStage("boot_test"); err == nil || !strings.Contains(err.Error(), "stages are: alpine_extract") {
		t.Errorf("unknown stage: %v", err)
	}
}

// Boolean environment variables read like booleans in build.conf; a value
// that is not one is an error naming the variable, not a silent false.
func TestEnvFlags(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  bool
		err   bool
	}{{"", false, false}, {"1", true, false}, {"yes", true, false}, {"ON", true, false}, {"0", false, false}, {"off", false, false}, {"yes please", false, true}} {
		got, err := envFlag([]string{"DEEP=x", "DEEP=" + tt.value}, "DEEP")
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("DEEP=%q: %v, %v", tt.value, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "DEEP") {
			t.Errorf("error does not name the variable: %v", err)
		}
	}
	if _, err := Load(Options{Root: project(t, false), Environ: []string{"FORCE=sure"}, LogOut: io.Discard}); err == nil || !strings.Contains(err.Error(), "FORCE") {
		t.Errorf("FORCE=sure: %v", err)
	}
}

// initramfs:check takes an archive, or a kernel image, which it reads the
// embedded archive out of.
func TestCheckInitramfsArchiveOrKernel(t *testing.T) {
	e := load(t, project(t, false))
	tree := t.TempDir()
	testutil.WriteTree(t, tree, map[string]string{"init*": "#!/bin/sh\n", "sbin/zinit*": "\x7fELF\n"})
	archive := filepath.Join(t.TempDir(), "initramfs.cpio.xz")
	testutil.Must(t, initramfs.Pack(t.Context(), tree, archive, initramfs.Options{Compression: initramfs.CompressionGo}))
	var out strings.Builder
	if err := e.CheckInitramfs(t.Context(), &out, archive); err != nil || !strings.HasPrefix(out.String(), archive+": ") {
		t.Errorf("archive: %v\n%s", err, out.String())
	}
	// A boot header without a payload is read as a kernel, and refused as one.
	fake := make([]byte, 0x300)
	copy(fake[0x202:], "HdrS")
	kernelFile := filepath.Join(t.TempDir(), "vmlinuz.efi")
	testutil.Must(t, os.WriteFile(kernelFile, fake, 0o644))
	if err := e.CheckInitramfs(t.Context(), io.Discard, kernelFile); !errors.Is(err, kernel.ErrNotBzImage) {
		t.Errorf("fake kernel: %v, want ErrNotBzImage", err)
	}
}
