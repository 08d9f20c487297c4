package pipeline

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/alpine"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/firmware"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// FirmwareReport lists, for every module in the image, its firmware files and whether each is in the image, in the firmware flist, or missing.
func (e *Env) FirmwareReport(ctx context.Context, w io.Writer) error {
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
	fmt.Fprint(w, rep.String())
	fmt.Fprintf(w, "%d in the image, %d in the firmware flist (%s), %d missing\n",
		rep.Count(firmware.InImage), rep.Count(firmware.InFlist), what, rep.Count(firmware.Missing))
	return nil
}

// firmwareReportTree is what the firmware report looks files up in: the
// packed firmware flist's manifest, else (FIRMWARE_FLIST_SOURCE=local) the
// folder it is packed from.
func (e *Env) firmwareReportTree(ctx context.Context) (firmware.Tree, string, error) {
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
// top, else firmwareFlistSource. Owners names the package of each file,
// when known.
func (e *Env) firmwareTree(ctx context.Context, log logrus.FieldLogger) (tree string, owners map[string]string, err error) {
	if e.cfg.FirmwareFlistSource != "alpine" {
		tree, err := e.firmwareFlistSource()
		return tree, nil, err
	}
	keys, err := alpine.TrustedKeys(e.cfg.AlpineExtraKeys)
	if err != nil {
		return "", nil, fmt.Errorf("ALPINE_EXTRA_KEYS: %w", err)
	}
	full, err := firmware.FullSet(ctx, firmware.FullOptions{
		Source: e.alpineSource(), Keys: keys, Fetcher: e.fetcher(log), Dir: filepath.Join(e.cfg.CacheDir, "linux-firmware"),
		Overlay: e.cfg.FirmwareDir, Progress: &progress.Options{Log: log}, Log: log,
	})
	if err != nil {
		return "", nil, err
	}
	log.Infof("firmware flist: %s", full)
	return full.Tree, full.Owners, nil
}

// firmwareFlistSource is what the firmware flist packs: the repository's
// FIRMWARE_DIR when it holds firmware, else the image's /lib/firmware.
func (e *Env) firmwareFlistSource() (string, error) {
	has, err := firmware.HasFiles(e.cfg.FirmwareDir)
	if err != nil || has {
		return e.cfg.FirmwareDir, err
	}
	return filepath.Join(e.cfg.InstallDir, "lib", "firmware"), nil
}

// lazyApk finds apk only when a firmware entry needs an Alpine package, so a
// build whose firmware all comes from FIRMWARE_DIR needs no apk at all.
type lazyApk struct {
	e   *Env
	log logrus.FieldLogger
}

func (l lazyApk) Install(ctx context.Context, packages []string) error {
	r, err := l.e.apkRunner(ctx, l.log)
	if err != nil {
		return err
	}
	return r.Install(ctx, packages)
}

func alpineFirmware(e *Env) stage.Stage {
	var outputs []string
	if len(e.cfg.FirmwareNames()) > 0 {
		outputs = []string{filepath.Join(e.cfg.InstallDir, "lib", "firmware")}
	}
	return stage.Stage{
		Config:  e.values("ALPINE_MIRROR", "ALPINE_VERSION", "ALPINE_ARCH"),
		Inputs:  []string{e.configFile(config.FirmwareFile), e.cfg.FirmwareDir},
		Outputs: outputs,
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			_, err := firmware.Select(ctx, firmware.Options{
				Entries: e.cfg.FirmwareNames(), FirmwareDir: e.cfg.FirmwareDir,
				RootDir: e.cfg.InstallDir, Installer: lazyApk{e, log}, Log: log,
			})
			return err
		},
	}
}
