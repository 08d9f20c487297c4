//go:build mage

package main

import (
	"context"
	"os"

	"github.com/magefile/mage/mg"
)

// Firmware holds the firmware targets.
type Firmware mg.Namespace

// Report lists, for every module in the image, its firmware files and whether each is in the image, in the firmware flist, or missing.
func (Firmware) Report(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.FirmwareReport(ctx, os.Stdout)
}
