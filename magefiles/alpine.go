//go:build mage

package main

import (
	"context"

	"github.com/magefile/mage/mg"
)

// Alpine holds the targets that build the Alpine base of the image.
type Alpine mg.Namespace

// Extract downloads the Alpine minirootfs (verified) and unpacks it safely into INSTALL_DIR (stage alpine_extract).
func (Alpine) Extract(ctx context.Context) error { return runStage(ctx, "alpine_extract") }

// Configure writes apk repositories, resolv.conf and hostname, and removes OpenRC (stage alpine_configure).
func (Alpine) Configure(ctx context.Context) error { return runStage(ctx, "alpine_configure") }

// Packages installs config/packages.list with apk, unprivileged in a user namespace (stage alpine_packages).
func (Alpine) Packages(ctx context.Context) error { return runStage(ctx, "alpine_packages") }

// Firmware installs config/firmware.conf entries: files from firmware/<entry>/, else Alpine's linux-firmware-<entry> (stage alpine_firmware).
func (Alpine) Firmware(ctx context.Context) error { return runStage(ctx, "alpine_firmware") }
