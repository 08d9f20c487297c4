package pipeline

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
	"github.com/threefoldtech/zosbuilder/pkg/kernel"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/rootfs"
	"github.com/threefoldtech/zosbuilder/pkg/sbom"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// PackInitramfs packs any directory src into the archive out exactly as initramfs_create does.
func (e *Env) PackInitramfs(ctx context.Context, src, out string) error {
	return e.packInitramfs(ctx, e.log, src, out)
}

// CheckInitramfs runs the initramfs_test checks on any archive file, or on
// the initramfs a kernel image embeds, and prints the report to w.
func (e *Env) CheckInitramfs(ctx context.Context, w io.Writer, file string) error {
	return e.checkInitramfs(ctx, w, file)
}

func (e *Env) initramfsPath() string { return filepath.Join(e.cfg.DistDir, "initramfs.cpio.xz") }

func (e *Env) packInitramfs(ctx context.Context, log logrus.FieldLogger, src, out string) error {
	comp, err := initramfs.ParseCompression(e.cfg.InitramfsCompression)
	if err != nil {
		return err
	}
	// Pack logs the encoder that ran and the sizes.
	return initramfs.Pack(ctx, src, out, initramfs.Options{
		Compression: comp, SourceDateEpoch: e.cfg.SourceDateEpoch, Log: log, Progress: &progress.Options{Log: log},
	})
}

func (e *Env) checkInitramfs(ctx context.Context, w io.Writer, file string) error {
	rep, err := e.initramfsReport(ctx, file)
	if rep != nil {
		rep.Print(w)
	}
	return err
}

// initramfsReport checks the archive file, or the initramfs embedded in the
// kernel image file (without its size limit: the size of an embedded
// archive is not known).
func (e *Env) initramfsReport(ctx context.Context, file string) (*initramfs.Report, error) {
	opt := initramfs.CheckOptions{MaxSize: e.cfg.InitramfsMaxSize}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	head := make([]byte, kernel.HeaderSize)
	n, _ := io.ReadFull(f, head)
	f.Close()
	if !kernel.HasBootHeader(head[:n]) {
		return initramfs.Check(ctx, file, opt)
	}
	data, err := kernel.EmbeddedInitramfs(ctx, file)
	if err != nil {
		return nil, err
	}
	return initramfs.CheckStream(ctx, bytes.NewReader(data), file+" (embedded initramfs)", opt)
}

// gitRevision names the commit of this repository the image was built
// from, with "-dirty" when the work tree has changes; "" outside git.
func (e *Env) gitRevision() string {
	out, err := exec.Command("git", "-C", e.root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", e.root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		rev += "-dirty"
	}
	return rev
}

func initramfsCreate(e *Env) stage.Stage {
	return stage.Stage{
		Config:  e.values("ZEROOS_BRANDING", "SOURCE_DATE_EPOCH", "INITRAMFS_COMPRESSION"),
		Outputs: []string{e.initramfsPath(), e.sbomPath()},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			when := time.Now()
			if e.cfg.SourceDateEpoch != nil {
				when = time.Unix(*e.cfg.SourceDateEpoch, 0)
			}
			// Customize logs the build id it wrote. The SBOM names the
			// build id, so the id does not cover the SBOM's copy.
			id, err := rootfs.Customize(e.cfg.InstallDir, rootfs.CustomizeOptions{
				Branding: e.cfg.ZeroOSBranding, Time: when, GitRevision: e.gitRevision(),
				Derived: []string{"/" + sbom.EmbeddedPath}, Log: log,
			})
			if err != nil {
				return err
			}
			if err := e.writeSBOM(ctx, log, id, when); err != nil {
				return err
			}
			return e.packInitramfs(ctx, log, e.cfg.InstallDir, e.initramfsPath())
		},
	}
}

func initramfsTest(e *Env) stage.Stage {
	return stage.Stage{
		Config: e.values("INITRAMFS_MAX_SIZE"),
		Inputs: []string{e.initramfsPath()},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			// The report goes to the log, a line each, so it names the stage.
			var rep strings.Builder
			err := e.checkInitramfs(ctx, &rep, e.initramfsPath())
			for _, line := range strings.Split(strings.TrimRight(rep.String(), "\n"), "\n") {
				log.Info(line)
			}
			return err
		},
	}
}

func initScript(e *Env) stage.Stage {
	src := e.configFile(config.InitFile)
	return stage.Stage{
		Inputs:  []string{src},
		Outputs: []string{filepath.Join(e.cfg.InstallDir, "init")},
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			return rootfs.InstallInit(src, e.cfg.InstallDir)
		},
	}
}

func cleanup(e *Env) stage.Stage {
	return stage.Stage{
		Config: e.values("ENABLE_STRIP", "ENABLE_UPX", "UPX_BINARIES"),
		// No outputs: it changes INSTALL_DIR in place (what it leaves is
		// the absence of files); upx is optional (a warning).
		Tools: e.stripTools(),
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			upx := e.cfg.UPXBinaries
			if len(upx) == 0 {
				upx = e.componentPaths()
			}
			// Cleanup logs its own summary and warnings (a skipped UPX).
			_, err := rootfs.Cleanup(ctx, e.cfg.InstallDir, rootfs.CleanupOptions{
				Strip: e.cfg.EnableStrip, UPX: e.cfg.EnableUPX, UPXBinaries: upx, Log: log,
			})
			return err
		},
	}
}

func validation(e *Env) stage.Stage {
	return stage.Stage{
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			return rootfs.Validate(e.cfg.InstallDir, rootfs.ValidateOptions{Log: log})
		},
	}
}
