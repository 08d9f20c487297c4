package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// OldZinitDir is where the original kept the zinit units; they now live in
// zinit/ at the project root.
const OldZinitDir = "zinit"

// checkMoved fails on config the original kept in places this build no
// longer reads, so a maintainer's files are never silently ignored.
func (c *Config) checkMoved() error {
	old := filepath.Join(c.Root, "config", OldZinitDir)
	ents, err := os.ReadDir(old)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(ents) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", c.rel(old), unwrapPathError(err))
	}
	return fmt.Errorf("%s/ holds %d entries, which are not read: the zinit units and their init/*.sh scripts now live in zinit/ "+
		"at the project root (the original kept them in config/zinit/). Move yours there and remove %s/; "+
		"compare with the shipped set first: rfs-modules and rfs-firmware now run init/rfs.sh "+
		"(init/modules.sh and init/firmware.sh are gone, FLIST_BASE_URL and FIRMWARE_FLIST with them)",
		c.rel(old), len(ents), c.rel(old))
}
