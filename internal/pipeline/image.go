package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/sbom"
)

// PrintSBOM prints the SPDX SBOM of file (vmlinuz.efi, initramfs.cpio.xz or an SBOM), read back from the copy the image carries.
func PrintSBOM(ctx context.Context, w io.Writer, file string) error {
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
	_, err = w.Write(out.Bytes())
	return err
}

// DiffImages says what changed from image a to image b (each a vmlinuz.efi, initramfs.cpio.xz or SBOM); JSON=1 prints JSON.
func (e *Env) DiffImages(ctx context.Context, w io.Writer, a, b string) error {
	asJSON, err := e.flag("JSON")
	if err != nil {
		return err
	}
	ia, err := sbom.Load(ctx, a)
	if err != nil {
		return err
	}
	ib, err := sbom.Load(ctx, b)
	if err != nil {
		return err
	}
	d := sbom.Compare(ia, ib)
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	return d.WriteText(w)
}

func (e *Env) sbomPath() string { return filepath.Join(e.cfg.DistDir, "sbom.spdx.json") }

// writeSBOM takes stock of INSTALL_DIR and the flists it embeds and writes
// dist/sbom.spdx.json and the image's copy (sbom.EmbeddedPath).
func (e *Env) writeSBOM(ctx context.Context, log logrus.FieldLogger, buildID string, when time.Time) error {
	full, err := e.fullVersion(ctx)
	if err != nil {
		return err
	}
	version, _ := e.kernelVersion(ctx)
	comps, err := sbom.ComponentsOf(ctx, e.cfg.Components, e.componentOptions(log))
	if err != nil {
		return err
	}
	flists, err := e.packedFlists()
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
		log.Warnf("sbom: %d files of the image come from no package, component, module, firmware entry or known build step: %s",
			len(bad), strings.Join(bad, ", "))
	}
	w, err := sbom.WriteFiles(inv, e.sbomPath(), e.cfg.InstallDir)
	if err != nil {
		return err
	}
	log.Infof("sbom: %s (%d bytes, %d files); the image carries /%s (%d bytes)", e.sbomPath(), w.Full, w.Files, sbom.EmbeddedPath, w.Embedded)
	return nil
}

// packedFlistsFile is where rfs_flists records what it packed from where,
// for the SBOM.
func (e *Env) packedFlistsFile() string { return filepath.Join(e.flistDir(), "packed.json") }

// writePackedFlists records the flists the image embeds with the trees
// they were packed from (rfs_flists).
func (e *Env) writePackedFlists(flists []sbom.FlistSource) error {
	b, err := json.MarshalIndent(flists, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(e.packedFlistsFile(), append(b, '\n'), 0o644)
}

// packedFlists are the flists the image embeds (in /etc/rfs), each with the
// tree it was packed from and, for firmware, the package of each file, as
// rfs_flists recorded them. No flist (ENABLE_RFS=false) is none.
func (e *Env) packedFlists() ([]sbom.FlistSource, error) {
	embedded, _ := filepath.Glob(filepath.Join(e.embeddedFlists(), "*.fl"))
	if len(embedded) == 0 {
		return nil, nil
	}
	b, err := os.ReadFile(e.packedFlistsFile())
	if err != nil {
		return nil, fmt.Errorf("what rfs_flists packed: %w (mage reset rfs_flists reruns it)", err)
	}
	var flists []sbom.FlistSource
	if err := json.Unmarshal(b, &flists); err != nil {
		return nil, fmt.Errorf("%s: %w", e.packedFlistsFile(), err)
	}
	return flists, nil
}
