package pipeline

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/alpine"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/firmware"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

func (e *Env) alpineSource() alpine.Source {
	return alpine.Source{Mirror: e.cfg.AlpineMirror, Version: e.cfg.AlpineVersion, Arch: e.cfg.AlpineArch}
}

// apkRunner finds apk (the host's, or apk.static bootstrapped and verified
// with the minirootfs keys) and returns a runner for INSTALL_DIR.
func (e *Env) apkRunner(ctx context.Context, log logrus.FieldLogger) (*alpine.Runner, error) {
	apk, err := alpine.FindApk(ctx, alpine.BootstrapOptions{
		Source:  e.alpineSource(),
		KeysDir: filepath.Join(e.cfg.InstallDir, "etc/apk/keys"),
		Dir:     filepath.Join(e.cfg.CacheDir, "apk-tools-static"),
		Fetcher: e.fetcher(log),
		Log:     log,
	})
	if err != nil {
		return nil, err
	}
	// apk fetches from ALPINE_MIRROR, which the image's own repositories
	// file may not name (ALPINE_IMAGE_MIRROR).
	repos := filepath.Join(e.cfg.StateDir, "apk-repositories")
	if err := fsutil.WriteFile(repos, []byte(e.alpineSource().Repositories(alpine.DefaultRepositories)), 0o644); err != nil {
		return nil, err
	}
	return &alpine.Runner{Apk: apk, Root: e.cfg.InstallDir, Arch: e.cfg.AlpineArch, RepositoriesFile: repos, Log: log}, nil
}

// imageSource is the Alpine source /etc/apk/repositories names in the
// image: ALPINE_IMAGE_MIRROR, else ALPINE_MIRROR.
func (e *Env) imageSource() alpine.Source {
	s := e.alpineSource()
	if e.cfg.AlpineImageMirror != "" {
		s.Mirror = e.cfg.AlpineImageMirror
	}
	return s
}

// alpineExtract starts INSTALL_DIR afresh from the minirootfs; every stage
// that writes INSTALL_DIR follows it, so its rerun reruns them all. The
// later stages edit INSTALL_DIR in place and some of what they did cannot be
// taken back by running them again: apk add does not remove a package
// packages.list or firmware.conf no longer names, a firmware entry's folder
// or a component's binary stays when its entry goes, and cleanup
// (ENABLE_STRIP, ENABLE_UPX) and initramfs_create (ZEROOS_BRANDING) change
// the files of the packages themselves. So the stage also fingerprints
// those lists and settings (baseShaping): when one changes, the image is
// rebuilt from the minirootfs, as a clean build would make it. Edits that
// a rerun does replace (zinit units, modules.conf, component versions,
// config/init) rerun only their own stage and what follows it.
func alpineExtract(e *Env) stage.Stage {
	cfg, inputs := e.baseShaping()
	return stage.Stage{
		Config:  cfg,
		Inputs:  inputs,
		Outputs: []string{filepath.Join(e.cfg.InstallDir, "etc/alpine-release")},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			m, err := alpine.Extract(ctx, alpine.ExtractOptions{
				Source:            e.alpineSource(),
				MinirootfsVersion: e.cfg.AlpineMinirootfsVersion,
				MinirootfsSHA256:  e.cfg.AlpineMinirootfsSHA256,
				InstallDir:        e.cfg.InstallDir,
				Fetcher:           e.fetcher(log),
				Log:               log,
			})
			if err != nil {
				return err
			}
			log.Infof("extracted %s (sha256 %s)", m.File, m.SHA256)
			return nil
		},
	}
}

// baseShaping is what alpine_extract fingerprints: the minirootfs it
// extracts, and what decides the content of INSTALL_DIR in ways the stages
// editing it in place cannot undo (see alpineExtract).
func (e *Env) baseShaping() (cfg map[string]string, inputs []string) {
	cfg = e.values("ALPINE_MIRROR", "ALPINE_VERSION", "ALPINE_ARCH", "ALPINE_MINIROOTFS_VERSION", "ALPINE_MINIROOTFS_SHA256", "INSTALL_DIR",
		"ENABLE_STRIP", "ENABLE_UPX", "UPX_BINARIES", "ZEROOS_BRANDING")
	// Where components go, not their versions: a new build of a component
	// replaces its binary; a component gone or moved leaves one behind.
	cfg["component install paths"] = strings.Join(e.componentPaths(), " ")
	// Which firmware entries FIRMWARE_DIR serves, not their files: an entry
	// whose folder empties goes to its Alpine package and leaves the copy
	// behind; one whose folder fills leaves its package in apk's database.
	cfg["firmware entries from FIRMWARE_DIR"] = strings.Join(e.firmwareFromDir(), " ")
	return cfg, []string{e.configFile(config.PackagesFile), e.configFile(config.FirmwareFile)}
}

// firmwareFromDir lists the firmware.conf entries that firmware.Select takes
// from FIRMWARE_DIR rather than from an Alpine package. An unreadable
// folder is listed with a mark: alpine_firmware then fails on it, naming it.
func (e *Env) firmwareFromDir() []string {
	if e.cfg.FirmwareDir == "" {
		return nil
	}
	var out []string
	for _, name := range e.cfg.FirmwareNames() {
		switch has, err := firmware.HasFiles(filepath.Join(e.cfg.FirmwareDir, name)); {
		case err != nil:
			out = append(out, name+"(unreadable)")
		case has:
			out = append(out, name)
		}
	}
	return out
}

func alpineConfigure(e *Env) stage.Stage {
	return stage.Stage{
		Config:  e.values("ALPINE_MIRROR", "ALPINE_IMAGE_MIRROR", "ALPINE_VERSION", "ALPINE_ARCH"),
		Outputs: []string{filepath.Join(e.cfg.InstallDir, "etc/apk/repositories")},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			return alpine.Configure(e.cfg.InstallDir, alpine.ConfigureOptions{Source: e.imageSource()})
		},
	}
}

func alpinePackages(e *Env) stage.Stage {
	return stage.Stage{
		Config:  e.values("ALPINE_MIRROR", "ALPINE_VERSION", "ALPINE_ARCH"),
		Inputs:  []string{e.configFile(config.PackagesFile)},
		Outputs: []string{filepath.Join(e.cfg.InstallDir, "lib/apk/db/installed")},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			if len(e.cfg.Packages) == 0 {
				log.Infof("%s lists no packages", e.cfg.Path(config.PackagesFile))
				return nil
			}
			r, err := e.apkRunner(ctx, log)
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
