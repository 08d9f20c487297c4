//go:build mage

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
	"github.com/threefoldtech/zosbuilder/pkg/rootfs"
	"github.com/threefoldtech/zosbuilder/pkg/sbom"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// Initramfs holds the targets that finish the image and pack it.
type Initramfs mg.Namespace

// Init installs config/init as /init in INSTALL_DIR (stage init_script).
func (Initramfs) Init(ctx context.Context) error { return runStage(ctx, "init_script") }

// Cleanup removes docs, headers, static libs and caches, strips binaries and runs UPX when enabled (stage cleanup).
func (Initramfs) Cleanup(ctx context.Context) error { return runStage(ctx, "cleanup") }

// Validate checks /init, zinit and its units, core commands and every ELF file's interpreter and libraries (stage validation).
func (Initramfs) Validate(ctx context.Context) error { return runStage(ctx, "validation") }

// Create brands the image, writes its build id and SBOM (dist/sbom.spdx.json) and packs INSTALL_DIR into dist/initramfs.cpio.xz (stage initramfs_create).
func (Initramfs) Create(ctx context.Context) error { return runStage(ctx, "initramfs_create") }

// Test checks the archive just written (/init, zinit, /dev/console, safe names), prints its size and largest entries (stage initramfs_test).
func (Initramfs) Test(ctx context.Context) error { return runStage(ctx, "initramfs_test") }

// Pack packs any directory SRC into the archive OUT exactly as initramfs_create does.
func (Initramfs) Pack(ctx context.Context, src, out string) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.packInitramfs(ctx, src, out)
}

// Check runs the initramfs_test checks on any archive FILE.
func (Initramfs) Check(ctx context.Context, file string) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.checkInitramfs(ctx, file)
}

// List prints an ls -l style listing of the archive FILE.
func (Initramfs) List(ctx context.Context, file string) error {
	return initramfs.List(ctx, os.Stdout, file)
}

func (e *env) initramfsPath() string { return filepath.Join(e.cfg.DistDir, "initramfs.cpio.xz") }

func (e *env) packInitramfs(ctx context.Context, src, out string) error {
	comp, err := initramfs.ParseCompression(e.cfg.InitramfsCompression)
	if err != nil {
		return err
	}
	// Pack logs the encoder that ran and the sizes.
	return initramfs.Pack(ctx, src, out, initramfs.Options{
		Compression: comp, SourceDateEpoch: e.cfg.SourceDateEpoch, Log: e.log, Progress: os.Stderr,
	})
}

func (e *env) checkInitramfs(ctx context.Context, file string) error {
	rep, err := initramfs.Check(ctx, file, initramfs.CheckOptions{MaxSize: e.cfg.InitramfsMaxSize})
	if rep != nil {
		rep.Print(os.Stdout)
	}
	return err
}

// gitRevision names the commit of this repository the image was built
// from, with "-dirty" when the work tree has changes; "" outside git.
func (e *env) gitRevision() string {
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

func initramfsCreate(e *env) stage.Stage {
	return stage.Stage{
		Config:  e.values("ZEROOS_BRANDING", "SOURCE_DATE_EPOCH", "INITRAMFS_COMPRESSION"),
		Outputs: []string{e.initramfsPath(), e.sbomPath()},
		Run: func(ctx context.Context) error {
			when := time.Now()
			if e.cfg.SourceDateEpoch != nil {
				when = time.Unix(*e.cfg.SourceDateEpoch, 0)
			}
			// Customize logs the build id it wrote.
			id, err := rootfs.Customize(e.cfg.InstallDir, rootfs.CustomizeOptions{
				Branding: e.cfg.ZeroOSBranding, Time: when, GitRevision: e.gitRevision(),
				Derived: []string{"/" + sbom.EmbeddedPath}, Log: e.log,
			})
			if err != nil {
				return err
			}
			if err := e.writeSBOM(ctx, id, when); err != nil {
				return err
			}
			return e.packInitramfs(ctx, e.cfg.InstallDir, e.initramfsPath())
		},
	}
}

func initramfsTest(e *env) stage.Stage {
	return stage.Stage{
		Config: e.values("INITRAMFS_MAX_SIZE"),
		Inputs: []string{e.initramfsPath()},
		Run: func(ctx context.Context) error {
			return e.checkInitramfs(ctx, e.initramfsPath())
		},
	}
}

func initScript(e *env) stage.Stage {
	src := e.configFile(config.InitFile)
	return stage.Stage{
		Inputs:  []string{src},
		Outputs: []string{filepath.Join(e.cfg.InstallDir, "init")},
		Run: func(ctx context.Context) error {
			return rootfs.InstallInit(src, e.cfg.InstallDir)
		},
	}
}

func cleanup(e *env) stage.Stage {
	return stage.Stage{
		Config: e.values("ENABLE_STRIP", "ENABLE_UPX", "UPX_BINARIES"),
		Run: func(ctx context.Context) error {
			upx := e.cfg.UPXBinaries
			if len(upx) == 0 {
				upx = e.componentPaths()
			}
			// Cleanup logs its own summary and warnings (a skipped UPX).
			_, err := rootfs.Cleanup(ctx, e.cfg.InstallDir, rootfs.CleanupOptions{
				Strip: e.cfg.EnableStrip, UPX: e.cfg.EnableUPX, UPXBinaries: upx, Log: e.log,
			})
			return err
		},
	}
}

func validation(e *env) stage.Stage {
	return stage.Stage{
		Run: func(ctx context.Context) error {
			return rootfs.Validate(e.cfg.InstallDir, rootfs.ValidateOptions{Log: e.log})
		},
	}
}
