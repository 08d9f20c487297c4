//go:build mage

package main

import (
	"path/filepath"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/internal/fixtures"
)

// Fixtures holds targets that make test stand-ins for unreachable upstreams.
type Fixtures mg.Namespace

// Offline makes work/offline/ for PROFILE=offline: an Alpine mirror (minirootfs from busybox-static), the fakezinit repo, a firmware tree.
func (Fixtures) Offline() error {
	e, err := load()
	if err != nil {
		return err
	}
	dir := filepath.Join(e.Root(), "work", "offline")
	if err := fixtures.Offline(fixtures.OfflineOptions{Dir: dir, Busybox: "/bin/busybox"}); err != nil {
		return err
	}
	e.Log().Infof("offline fixtures ready in %s; now run: PROFILE=offline mage build", dir)
	return nil
}
