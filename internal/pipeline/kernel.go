package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/hosttools"
	"github.com/threefoldtech/zosbuilder/pkg/kernel"
	"github.com/threefoldtech/zosbuilder/pkg/rootfs"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// FullVersion is KERNEL_VERSION + CONFIG_LOCALVERSION, the /lib/modules name (never uname -r).
func (e *Env) FullVersion(ctx context.Context) (string, error) { return e.fullVersion(ctx) }

// kernelVersion is KERNEL_VERSION, or, when it is empty and
// KERNEL_SOURCE_TARBALL is set, the version that tarball declares.
func (e *Env) kernelVersion(ctx context.Context) (string, error) {
	e.kverOnce.Do(func() {
		e.kver = e.cfg.KernelVersion
		if e.kver == "" && e.cfg.KernelSourceTarball != "" {
			e.kver, e.kverErr = kernel.TarballVersion(ctx, e.cfg.KernelSourceTarball)
		} else if e.kver == "" {
			e.kverErr = fmt.Errorf("%s: KERNEL_VERSION is empty; it may only be left out with KERNEL_SOURCE_TARBALL", e.cfg.Origin("KERNEL_VERSION"))
		}
	})
	return e.kver, e.kverErr
}

// fullVersion is the one place FULL_VERSION is computed.
func (e *Env) fullVersion(ctx context.Context) (string, error) {
	v, err := e.kernelVersion(ctx)
	if err != nil {
		return "", err
	}
	return kernel.FullVersion(v, e.configFile(config.KernelConfigFile))
}

func (e *Env) kernelOptions(full string, log logrus.FieldLogger) kernel.Options {
	var epoch int64
	if e.cfg.SourceDateEpoch != nil {
		epoch = *e.cfg.SourceDateEpoch
	}
	return kernel.Options{
		Dir: e.cfg.KernelDir, FullVersion: full, ConfigPath: e.configFile(config.KernelConfigFile),
		Jobs: e.cfg.Jobs, SourceDateEpoch: epoch, Log: log,
	}
}

// modulesRoot holds lib/modules/<FULL_VERSION>: KERNEL_MODULES_DIR, or
// what kernel_modules installed. It is the one source of modules for the
// image and the modules flist.
func (e *Env) modulesRoot(full string) (string, error) {
	if e.cfg.KernelModulesDir != "" {
		return kernel.PrebuiltModules(e.cfg.KernelModulesDir, full)
	}
	return kernel.Layout{Dir: e.cfg.KernelDir}.ModulesRoot(), nil
}

func (e *Env) warnDropped(log logrus.FieldLogger, dropped []kernel.Dropped) {
	if len(dropped) == 0 {
		return
	}
	var names []string
	for _, d := range dropped {
		names = append(names, d.String())
	}
	log.Warnf("make olddefconfig dropped %d options of %s: %s", len(dropped), e.configFile(config.KernelConfigFile), strings.Join(names, ", "))
}

// kernelMakeTools are what the kernel's make needs, ccache included when
// the compile cache is on.
func (e *Env) kernelMakeTools() []hosttools.Tool {
	return append(hosttools.Named("make", "cc", "flex", "bison", "bc", "perl"), e.compileCacheTools()...)
}

// kernelStage is what kernel_modules and kernel_build run with: the
// source, the build options, and the artifact and compile caches.
func (e *Env) kernelStage(ctx context.Context, full string, log logrus.FieldLogger) (kernel.StageOptions, error) {
	version, err := e.kernelVersion(ctx)
	if err != nil {
		return kernel.StageOptions{}, err
	}
	cc, err := e.compileCache(ctx)
	if err != nil {
		return kernel.StageOptions{}, err
	}
	return kernel.StageOptions{
		Source: kernel.SourceOptions{
			Version: version, URL: e.cfg.KernelSourceURL, SHA256: e.cfg.KernelSHA256,
			Tarball: e.cfg.KernelSourceTarball, Fetcher: e.fetcher(log), Log: log,
		},
		Build: e.kernelOptions(full, log), Artifacts: e.artifacts, CompileCache: cc,
	}, nil
}

func kernelModules(e *Env) stage.Stage {
	inputs := []string{e.configFile(config.KernelConfigFile)}
	outputs := []string{kernel.Layout{Dir: e.cfg.KernelDir}.ModulesRoot()}
	tools := append(e.kernelMakeTools(), hosttools.Named("depmod")...)
	if e.cfg.KernelSourceTarball != "" {
		inputs = append(inputs, e.cfg.KernelSourceTarball)
	}
	if e.cfg.KernelModulesDir != "" {
		// Nothing is built or written: the prebuilt tree is used as it is.
		inputs, outputs, tools = append(inputs, e.cfg.KernelModulesDir), nil, nil
	}
	return stage.Stage{
		Config:  e.values("KERNEL_VERSION", "KERNEL_SOURCE_URL", "KERNEL_SHA256", "KERNEL_SOURCE_TARBALL", "KERNEL_MODULES_DIR", "SOURCE_DATE_EPOCH"),
		Inputs:  inputs,
		Outputs: outputs,
		Tools:   tools,
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			full, err := e.fullVersion(ctx)
			if err != nil {
				return err
			}
			if e.cfg.KernelModulesDir != "" {
				root, err := kernel.PrebuiltModules(e.cfg.KernelModulesDir, full)
				if err != nil {
					return err
				}
				log.Infof("using the prebuilt modules in %s (KERNEL_MODULES_DIR)", root)
				return nil
			}
			opt, err := e.kernelStage(ctx, full, log)
			if err != nil {
				return err
			}
			dropped, err := kernel.Modules(ctx, opt)
			if err != nil {
				return err
			}
			e.warnDropped(log, dropped)
			return nil
		},
	}
}

func kernelBuild(e *Env) stage.Stage {
	initramfs := filepath.Join(e.cfg.DistDir, "initramfs.cpio.xz")
	output := filepath.Join(e.cfg.DistDir, "vmlinuz.efi")
	return stage.Stage{
		Config:  e.values("SOURCE_DATE_EPOCH"),
		Inputs:  []string{e.configFile(config.KernelConfigFile), initramfs},
		Outputs: []string{output},
		Tools:   e.kernelMakeTools(),
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			full, err := e.fullVersion(ctx)
			if err != nil {
				return err
			}
			id, err := os.ReadFile(filepath.Join(e.cfg.InstallDir, rootfs.BuildIDFile))
			if err != nil {
				return fmt.Errorf("read the build id the kernel must embed: %w", err)
			}
			opt, err := e.kernelStage(ctx, full, log)
			if err != nil {
				return err
			}
			dropped, err := kernel.Image(ctx, opt, kernel.ImageOptions{
				Initramfs: initramfs, BuildID: strings.TrimSpace(string(id)), Output: output,
			})
			if err != nil {
				return err
			}
			e.warnDropped(log, dropped)
			// The copy the kernel carries gets initramfs_test's checks too.
			rep, err := e.initramfsReport(ctx, output)
			if err != nil {
				return err
			}
			log.Infof("%s embeds the initramfs with build id %s (%d entries, checked)", output, strings.TrimSpace(string(id)), rep.Entries)
			return nil
		},
	}
}
