package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/firmware"
	"github.com/threefoldtech/zosbuilder/pkg/hosttools"
	"github.com/threefoldtech/zosbuilder/pkg/kernel"
	"github.com/threefoldtech/zosbuilder/pkg/modules"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// modulesPlan resolves modules.conf against the modules tree and returns
// the plan and the tree it used.
func (e *Env) modulesPlan(ctx context.Context, log logrus.FieldLogger) (modules.Plan, string, error) {
	full, err := e.fullVersion(ctx)
	if err != nil {
		return modules.Plan{}, "", err
	}
	root, err := e.modulesRoot(full)
	if err != nil {
		return modules.Plan{}, "", err
	}
	ix, err := modules.Load(root, full, modules.Options{Log: log})
	if err != nil {
		return modules.Plan{}, "", err
	}
	plan, err := modules.NewPlan(ix, e.cfg.ModuleNames(1), e.cfg.ModuleNames(2))
	if err != nil {
		return modules.Plan{}, "", fmt.Errorf("%s: %w", e.cfg.Path(config.ModulesFile), err)
	}
	return plan, root, nil
}

// planFile records the resolved closures for maintainers (and as the
// stage's output).
func (e *Env) planFile() string { return filepath.Join(e.cfg.StateDir, "modules-plan.txt") }

func modulesSetup(e *Env) stage.Stage {
	return stage.Stage{
		Inputs:  []string{e.configFile(config.ModulesFile), e.configFile(config.KernelConfigFile)},
		Outputs: []string{e.planFile()},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			plan, _, err := e.modulesPlan(ctx, log)
			if err != nil {
				return err
			}
			var b strings.Builder
			for i, c := range []modules.Closure{plan.Stage1, plan.Stage2} {
				fmt.Fprintf(&b, "# stage %d\n%s\n", i+1, strings.Join(c.Lines(), "\n"))
				if bi := c.Builtin(); len(bi) > 0 {
					log.Infof("stage %d: built into the kernel: %s", i+1, strings.Join(bi, ", "))
				}
			}
			log.Infof("stage 1: %d modules, stage 2: %d modules (with dependencies)", len(plan.Stage1.Modules()), len(plan.Stage2.Modules()))
			if err := e.warnRuntimeNeeds(log); err != nil {
				return err
			}
			return fsutil.WriteFile(e.planFile(), []byte(b.String()), 0o644)
		},
	}
}

// warnRuntimeNeeds says which options the runtime needs (kernel.RuntimeNeeds)
// kernel.config lacks, an option built as a module counting when
// modules.conf loads it at boot: the image would build but not come up.
func (e *Env) warnRuntimeNeeds(log logrus.FieldLogger) error {
	path := e.configFile(config.KernelConfigFile)
	cfg, err := kernel.ReadConfig(path)
	if err != nil {
		return err
	}
	for _, u := range kernel.CheckRuntime(cfg, append(e.cfg.ModuleNames(1), e.cfg.ModuleNames(2)...)) {
		log.Warnf("%s lacks what the runtime needs: %s", path, u)
	}
	return nil
}

func modulesCopy(e *Env) stage.Stage {
	return stage.Stage{
		// Which firmware report it writes depends on these.
		Config:  e.values("FIRMWARE_FLIST_SOURCE", "ENABLE_RFS"),
		Inputs:  []string{e.configFile(config.ModulesFile), e.configFile(config.KernelConfigFile)},
		Outputs: e.inImage(modules.Stage1ListPath, modules.Stage2ListPath, modules.KernelVersionPath),
		Tools:   hosttools.Named("depmod"),
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			plan, root, err := e.modulesPlan(ctx, log)
			if err != nil {
				return err
			}
			if err := modules.Copy(ctx, plan, modules.CopyOptions{SrcRoot: root, DstRoot: e.cfg.InstallDir, Log: log}); err != nil {
				return err
			}
			// With the full firmware set, rfs_flists reports once it is packed.
			if e.cfg.FirmwareFlistSource == "alpine" && e.cfg.EnableRFS {
				return nil
			}
			src, err := e.firmwareFlistSource()
			if err != nil {
				return err
			}
			return e.reportFirmware(ctx, log, firmware.DirTree(src))
		},
	}
}

// reportFirmware warns once about firmware files the image's modules ask
// for that neither the image nor the firmware flist has. Missing firmware
// only matters on hardware a node may not have, so it never fails the build.
func (e *Env) reportFirmware(ctx context.Context, log logrus.FieldLogger, flist firmware.Tree) error {
	full, err := e.fullVersion(ctx)
	if err != nil {
		return err
	}
	rep, err := firmware.BuildReport(e.cfg.InstallDir, full, flist)
	if err != nil {
		return err
	}
	p := filepath.Join(e.cfg.DistDir, "firmware-report.txt")
	if n := rep.Count(firmware.Missing); n > 0 {
		if err := os.MkdirAll(e.cfg.DistDir, 0o755); err != nil {
			return err
		}
		if err := rep.WriteFile(p); err != nil {
			return err
		}
		log.Warnf("%d firmware files requested by the image's modules are neither in the image nor in the firmware flist; see %s", n, p)
		return nil
	}
	// The report of an earlier run would name firmware that is no longer missing.
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
