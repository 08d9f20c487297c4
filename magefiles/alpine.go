//go:build mage

package main

import (
	"context"
	"path/filepath"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/pkg/alpine"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// Alpine holds the targets that build the Alpine base of the image.
type Alpine mg.Namespace

// Extract downloads the Alpine minirootfs (verified) and unpacks it safely into INSTALL_DIR (stage alpine_extract).
func (Alpine) Extract(ctx context.Context) error { return runStage(ctx, "alpine_extract") }

// Configure writes apk repositories, resolv.conf and hostname, and removes OpenRC (stage alpine_configure).
func (Alpine) Configure(ctx context.Context) error { return runStage(ctx, "alpine_configure") }

// Packages installs config/packages.list with apk, unprivileged in a user namespace (stage alpine_packages).
func (Alpine) Packages(ctx context.Context) error { return runStage(ctx, "alpine_packages") }

func (e *env) alpineSource() alpine.Source {
	return alpine.Source{Mirror: e.cfg.AlpineMirror, Version: e.cfg.AlpineVersion, Arch: e.cfg.AlpineArch}
}

// apkRunner finds apk (the host's, or apk.static bootstrapped and verified
// with the minirootfs keys) and returns a runner for INSTALL_DIR.
func (e *env) apkRunner(ctx context.Context) (*alpine.Runner, error) {
	apk, err := alpine.FindApk(ctx, alpine.BootstrapOptions{
		Source:  e.alpineSource(),
		KeysDir: filepath.Join(e.cfg.InstallDir, "etc/apk/keys"),
		Dir:     filepath.Join(e.cfg.CacheDir, "apk-tools-static"),
		Fetcher: e.fetcher(),
		Log:     e.log,
	})
	if err != nil {
		return nil, err
	}
	return &alpine.Runner{Apk: apk, Root: e.cfg.InstallDir, Arch: e.cfg.AlpineArch, Log: e.log}, nil
}

func alpineExtract(e *env) stage.Stage {
	return stage.Stage{
		Config:  e.values("ALPINE_MIRROR", "ALPINE_VERSION", "ALPINE_ARCH", "ALPINE_MINIROOTFS_VERSION", "ALPINE_MINIROOTFS_SHA256", "INSTALL_DIR"),
		Outputs: []string{filepath.Join(e.cfg.InstallDir, "etc/alpine-release")},
		Run: func(ctx context.Context) error {
			m, err := alpine.Extract(ctx, alpine.ExtractOptions{
				Source:            e.alpineSource(),
				MinirootfsVersion: e.cfg.AlpineMinirootfsVersion,
				MinirootfsSHA256:  e.cfg.AlpineMinirootfsSHA256,
				InstallDir:        e.cfg.InstallDir,
				Fetcher:           e.fetcher(),
				Log:               e.log,
			})
			if err != nil {
				return err
			}
			e.log.Infof("extracted %s (sha256 %s)", m.File, m.SHA256)
			return nil
		},
	}
}

func alpineConfigure(e *env) stage.Stage {
	return stage.Stage{
		Config: e.values("ALPINE_MIRROR", "ALPINE_VERSION", "ALPINE_ARCH"),
		Run: func(ctx context.Context) error {
			return alpine.Configure(e.cfg.InstallDir, alpine.ConfigureOptions{Source: e.alpineSource()})
		},
	}
}

func alpinePackages(e *env) stage.Stage {
	return stage.Stage{
		Config: e.values("ALPINE_MIRROR", "ALPINE_VERSION", "ALPINE_ARCH"),
		Inputs: []string{e.configFile(config.PackagesFile)},
		Run: func(ctx context.Context) error {
			if len(e.cfg.Packages) == 0 {
				e.log.Infof("%s lists no packages", e.cfg.Path(config.PackagesFile))
				return nil
			}
			r, err := e.apkRunner(ctx)
			if err != nil {
				return err
			}
			pkgs := make([]alpine.Package, len(e.cfg.Packages))
			for i, p := range e.cfg.Packages {
				pkgs[i] = alpine.Package(p)
			}
			if err := r.Add(ctx, pkgs); err != nil {
				return err
			}
			// Packages may bring OpenRC scripts back; Zero-OS uses zinit.
			return alpine.Prune(e.cfg.InstallDir)
		},
	}
}
