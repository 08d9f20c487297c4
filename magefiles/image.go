//go:build mage

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/sbom"
)

// Image holds the targets that read built images: their SBOM and what changed between two.
type Image mg.Namespace

// Sbom prints the SPDX SBOM of FILE (vmlinuz.efi, initramfs.cpio.xz or an SBOM), read back from the copy the image carries.
func (Image) Sbom(ctx context.Context, file string) error {
	img, err := sbom.Load(ctx, file)
	if err != nil {
		return err
	}
	if !img.HasSBOM {
		return fmt.Errorf("%s: %w", file, sbom.ErrNoSBOM)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, img.SBOM, "", "  "); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	out.WriteByte('\n')
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

// Diff says what changed from image A to image B (each a vmlinuz.efi, initramfs.cpio.xz or SBOM); JSON=1 prints JSON.
func (Image) Diff(ctx context.Context, a, b string) error {
	ia, err := sbom.Load(ctx, a)
	if err != nil {
		return err
	}
	ib, err := sbom.Load(ctx, b)
	if err != nil {
		return err
	}
	d := sbom.Compare(ia, ib)
	if truthy(os.Getenv("JSON")) {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	return d.WriteText(os.Stdout)
}

func (e *env) sbomPath() string { return filepath.Join(e.cfg.DistDir, "sbom.spdx.json") }

// writeSBOM takes stock of INSTALL_DIR and the flists it embeds and writes
// dist/sbom.spdx.json and the image's copy (sbom.EmbeddedPath).
func (e *env) writeSBOM(ctx context.Context, buildID string, when time.Time) error {
	full, err := e.fullVersion(ctx)
	if err != nil {
		return err
	}
	version, _ := e.kernelVersion(ctx)
	comps, err := sbom.ComponentsOf(ctx, e.cfg.Components, e.componentOptions())
	if err != nil {
		return err
	}
	flists, err := e.sbomFlists(full)
	if err != nil {
		return err
	}
	inv, err := sbom.Generate(ctx, sbom.Options{
		Root: e.cfg.InstallDir, BuildID: buildID, Created: when,
		KernelVersion: version, KernelFullVersion: full, KernelConfig: e.configFile(config.KernelConfigFile),
		Components: comps, FirmwareDir: e.cfg.FirmwareDir, FirmwareEntries: e.cfg.FirmwareNames(),
		Flists: flists, Jobs: e.cfg.Jobs,
	})
	if err != nil {
		return err
	}
	if bad := inv.Unexplained(); len(bad) > 0 {
		e.log.Warnf("sbom: %d files of the image come from no package, component, module, firmware entry or known build step: %s",
			len(bad), strings.Join(bad, ", "))
	}
	w, err := sbom.WriteFiles(inv, e.sbomPath(), e.cfg.InstallDir)
	if err != nil {
		return err
	}
	e.log.Infof("sbom: %s (%d bytes, %d files); the image carries /%s (%d bytes)", e.sbomPath(), w.Full, w.Files, sbom.EmbeddedPath, w.Embedded)
	return nil
}

// sbomFlists are the flists the image embeds (rfs_flists put them in
// /etc/rfs) with the trees they were packed from.
func (e *env) sbomFlists(full string) ([]sbom.FlistSource, error) {
	fls, _ := filepath.Glob(filepath.Join(e.cfg.InstallDir, "etc", "rfs", "*.fl"))
	var out []sbom.FlistSource
	for _, fl := range fls {
		switch name := filepath.Base(fl); {
		case strings.HasPrefix(name, "modules-"):
			root, err := e.modulesRoot(full)
			if err != nil {
				return nil, err
			}
			out = append(out, sbom.FlistSource{Path: fl, Kind: sbom.FlistModules, MountPoint: "lib/modules/" + full,
				Source: filepath.Join(root, "lib", "modules", full)})
		case strings.HasPrefix(name, "firmware-"):
			src, err := e.firmwareFlistSource()
			if err != nil {
				return nil, err
			}
			// Packages: the linux-firmware-* package of each file, once the
			// flist is packed from them.
			out = append(out, sbom.FlistSource{Path: fl, Kind: sbom.FlistFirmware, MountPoint: "lib/firmware", Source: src})
		}
	}
	return out, nil
}
