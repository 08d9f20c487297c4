//go:build mage

package main

import (
	"context"
	"io"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/internal/pipeline"
	"github.com/threefoldtech/zosbuilder/internal/stdout"
)

// Image holds the targets that read built images: their SBOM and what changed between two.
type Image mg.Namespace

// Sbom prints the SPDX SBOM of FILE (vmlinuz.efi, initramfs.cpio.xz or an SBOM), read back from the copy the image carries.
func (Image) Sbom(ctx context.Context, file string) error {
	return stdout.Print(func(w io.Writer) error { return pipeline.PrintSBOM(ctx, w, file) })
}

// Diff says what changed from image A to image B (each a vmlinuz.efi, initramfs.cpio.xz or SBOM); JSON=1 prints JSON.
func (Image) Diff(ctx context.Context, a, b string) error {
	e, err := load()
	if err != nil {
		return err
	}
	return stdout.Print(func(w io.Writer) error { return e.DiffImages(ctx, w, a, b) })
}
