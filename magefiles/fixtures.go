//go:build mage

package main

import (
	"context"
	"path/filepath"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/internal/fixtures"
)

// Fixtures holds targets that make test stand-ins for unreachable upstreams.
type Fixtures mg.Namespace

// Offline makes work/offline/ for PROFILE=offline: an Alpine mirror (busybox minirootfs, linux-firmware-* from Debian's firmware .debs, signed), the fakezinit repo, a firmware tree.
func (Fixtures) Offline(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	debs, err := fixtures.FirmwareDebsDir()
	if err != nil {
		return err
	}
	dir := filepath.Join(e.Root(), "work", "offline")
	res, err := fixtures.Offline(ctx, fixtures.OfflineOptions{Dir: dir, Busybox: "/bin/busybox", Debs: debs})
	if err != nil {
		return err
	}
	files, bytes := res.Firmware.Files()
	e.Log().Infof("fixture firmware repository: %d linux-firmware packages, %d files, %d MB (from the .debs in %s; reused: %v)",
		len(res.Firmware.Packages), files, bytes>>20, debs, res.Firmware.Reused)
	e.Log().Infof("offline fixtures ready in %s; now run: PROFILE=offline mage build", dir)
	return nil
}
