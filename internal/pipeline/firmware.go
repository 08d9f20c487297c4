package pipeline

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/firmware"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// FirmwareReport lists, for every module in the image, its firmware files and whether each is in the image, in the firmware flist, or missing.
func (e *Env) FirmwareReport(ctx context.Context, w io.Writer) error {
	full, err := e.fullVersion(ctx)
	if err != nil {
		return err
	}
	rep, err := e.firmwareReport(full)
	if err != nil {
		return err
	}
	fmt.Fprint(w, rep.String())
	fmt.Fprintf(w, "%d in the image, %d in the firmware flist, %d missing\n",
		rep.Count(firmware.InImage), rep.Count(firmware.InFlist), rep.Count(firmware.Missing))
	return nil
}

// firmwareReport says where each firmware file the image's modules ask for
// is: in the image, in the firmware flist, or missing.
func (e *Env) firmwareReport(full string) (firmware.Report, error) {
	src, err := e.firmwareFlistSource()
	if err != nil {
		return firmware.Report{}, err
	}
	return firmware.BuildReport(e.cfg.InstallDir, full, src)
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
