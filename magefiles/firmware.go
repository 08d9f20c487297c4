//go:build mage

package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/pkg/alpine"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/firmware"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// Firmware holds the firmware targets.
type Firmware mg.Namespace

// Firmware installs config/firmware.conf entries: files from firmware/<entry>/, else Alpine's linux-firmware-<entry> (stage alpine_firmware).
func (Alpine) Firmware(ctx context.Context) error { return runStage(ctx, "alpine_firmware") }

// Report lists, for every module in the image, its firmware files and whether each is in the image, in the firmware flist, or missing.
func (Firmware) Report(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	full, err := e.fullVersion(ctx)
	if err != nil {
		return err
	}
	tree, what, err := e.firmwareReportTree(ctx)
	if err != nil {
		return err
	}
	rep, err := firmware.BuildReport(e.cfg.InstallDir, full, tree)
	if err != nil {
		return err
	}
	fmt.Print(rep.String())
	fmt.Printf("%d in the image, %d in the firmware flist (%s), %d missing\n",
		rep.Count(firmware.InImage), rep.Count(firmware.InFlist), what, rep.Count(firmware.Missing))
	return nil
}

// firmwareReportTree is what the firmware report looks files up in: the
// packed firmware flist's manifest, else (FIRMWARE_FLIST_SOURCE=local) the
// folder it is packed from.
func (e *env) firmwareReportTree(ctx context.Context) (firmware.Tree, string, error) {
	fl, err := firmware.PackedFlist(e.flistDir(), "firmware-"+e.firmwareTag()+".fl")
	if err != nil {
		return nil, "", err
	}
	if fl != "" {
		tree, err := firmware.FlistTree(ctx, fl)
		return tree, fl, err
	}
	if e.cfg.FirmwareFlistSource == "alpine" {
		return nil, "", fmt.Errorf("no firmware flist in %s yet: mage rfs:packFirmware (or mage build) packs the full firmware set", e.flistDir())
	}
	src, err := e.firmwareFlistSource()
	return firmware.DirTree(src), src, err
}

// firmwareTree assembles what the firmware flist packs: with
// FIRMWARE_FLIST_SOURCE=alpine every linux-firmware* package of the mirror
// (verified with Alpine's keys and ALPINE_EXTRA_KEYS) with FIRMWARE_DIR on
// top, else firmwareFlistSource.
func (e *env) firmwareTree(ctx context.Context) (string, error) {
	if e.cfg.FirmwareFlistSource != "alpine" {
		return e.firmwareFlistSource()
	}
	keys, err := alpine.TrustedKeys(e.cfg.AlpineExtraKeys)
	if err != nil {
		return "", fmt.Errorf("ALPINE_EXTRA_KEYS: %w", err)
	}
	full, err := firmware.FullSet(ctx, firmware.FullOptions{
		Source: e.alpineSource(), Keys: keys, Fetcher: e.fetcher(), Dir: filepath.Join(e.cfg.CacheDir, "linux-firmware"),
		Overlay: e.cfg.FirmwareDir, Progress: &progress.Options{}, Log: e.log,
	})
	if err != nil {
		return "", err
	}
	e.log.Infof("firmware flist: %s", full)
	return full.Tree, nil
}

// firmwareFlistSource is what the firmware flist packs: the repository's
// FIRMWARE_DIR when it holds firmware, else the image's /lib/firmware.
func (e *env) firmwareFlistSource() (string, error) {
	has, err := firmware.HasFiles(e.cfg.FirmwareDir)
	if err != nil || has {
		return e.cfg.FirmwareDir, err
	}
	return filepath.Join(e.cfg.InstallDir, "lib", "firmware"), nil
}

// lazyApk finds apk only when a firmware entry needs an Alpine package, so a
// build whose firmware all comes from FIRMWARE_DIR needs no apk at all.
type lazyApk struct{ e *env }

func (l lazyApk) Install(ctx context.Context, packages []string) error {
	r, err := l.e.apkRunner(ctx)
	if err != nil {
		return err
	}
	return r.Install(ctx, packages)
}

func alpineFirmware(e *env) stage.Stage {
	return stage.Stage{
		Config: e.values("ALPINE_MIRROR", "ALPINE_VERSION", "ALPINE_ARCH"),
		Inputs: []string{e.configFile(config.FirmwareFile), e.cfg.FirmwareDir},
		Run: func(ctx context.Context) error {
			_, err := firmware.Select(ctx, firmware.Options{
				Entries: e.cfg.FirmwareNames(), FirmwareDir: e.cfg.FirmwareDir,
				RootDir: e.cfg.InstallDir, Installer: lazyApk{e}, Log: e.log,
			})
			return err
		},
	}
}
