//go:build mage

package main

import (
	"context"
	"os"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
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
	return e.PackInitramfs(ctx, src, out)
}

// Check runs the initramfs_test checks on any archive FILE, or on the initramfs a vmlinuz.efi FILE embeds.
func (Initramfs) Check(ctx context.Context, file string) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.CheckInitramfs(ctx, os.Stdout, file)
}

// List prints an ls -l style listing of the archive FILE.
func (Initramfs) List(ctx context.Context, file string) error {
	return initramfs.List(ctx, os.Stdout, file)
}
