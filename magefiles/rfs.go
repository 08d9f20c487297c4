//go:build mage

package main

import (
	"context"
	"io"
	"os"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/internal/pipeline"
	"github.com/threefoldtech/zosbuilder/internal/stdout"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
)

// Rfs holds the rfs flist targets: the modules and firmware flists of the build, and tools for any flist.
type Rfs mg.Namespace

// Flists packs the modules and firmware flists and embeds them in INSTALL_DIR/etc/rfs when ENABLE_RFS (stage rfs_flists).
func (Rfs) Flists(ctx context.Context) error { return runStage(ctx, "rfs_flists") }

// PackModules packs lib/modules/<FULL_VERSION> of the kernel_modules tree into dist/flists/modules-<FULL_VERSION>.fl.
func (Rfs) PackModules(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.PackModules(ctx)
}

// PackFirmware packs every linux-firmware* package of the mirror with firmware/ on top (FIRMWARE_FLIST_SOURCE) into dist/flists/firmware-<FIRMWARE_TAG or date>.fl.
func (Rfs) PackFirmware(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.PackFirmware(ctx)
}

// Upload uploads the .fl manifests in dist/flists to S3_BUCKET/MANIFESTS_SUBPATH (config/rfs.conf).
func (Rfs) Upload(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.UploadManifests(ctx)
}

// Pack packs SRC_DIR into the flist FL, uploading blobs to STORES ("[xx-yy=]URL,...": dir://, s3://, s3s://).
func (Rfs) Pack(ctx context.Context, src, fl, stores string) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.PackFlist(ctx, src, fl, stores)
}

// Unpack extracts the flist FL into DIR, fetching blobs from the stores it routes to (ALLOW_ROUTES: see README) or from STORE=URLS.
func (Rfs) Unpack(ctx context.Context, fl, dir string) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.UnpackFlist(ctx, fl, dir)
}

// Tree prints the flist FL as a tree, exactly as `rfs flist tree` does.
func (Rfs) Tree(fl string) error {
	return stdout.Print(func(w io.Writer) error { return flist.Tree(w, fl) })
}

// Inspect prints every entry of the flist FL, exactly as `rfs flist inspect` does (with the correct gid).
func (Rfs) Inspect(fl string) error {
	return stdout.Print(func(w io.Writer) error { return flist.Inspect(w, fl) })
}

// Stores lists the routes of the flist FL as `rfs config store list` does, passwords masked.
func (Rfs) Stores(ctx context.Context, fl string) error {
	return stdout.Print(func(w io.Writer) error { return pipeline.ListStores(ctx, w, fl) })
}

// StoresAdd adds routes ("[xx-yy=]URL,..."; rfs.conf means config/rfs.conf's read-only route) to the flist FL, such as an HTTPS row.
func (Rfs) StoresAdd(ctx context.Context, fl, stores string) error {
	return editStores(ctx, fl, stores, flist.AddRoutes)
}

// StoresSet replaces the routes of the flist FL with STORES (rfs.conf after rotating the read credentials there).
func (Rfs) StoresSet(ctx context.Context, fl, stores string) error {
	return editStores(ctx, fl, stores, flist.SetRoutes)
}

// StoresDelete removes the routes of the flist FL whose store is STORE (as written, or as rfs:stores shows it).
func (Rfs) StoresDelete(ctx context.Context, fl, storeURL string) error {
	return stdout.Print(func(w io.Writer) error { return pipeline.DeleteStores(ctx, w, fl, storeURL) })
}

func editStores(ctx context.Context, fl, stores string, edit pipeline.RouteEdit) error {
	e, err := load()
	if err != nil {
		return err
	}
	return stdout.Print(func(w io.Writer) error { return e.EditStores(ctx, w, fl, stores, edit) })
}

// Verify checks that every block of the flist FL is in its routed store, or in STORE=URLS (DEEP=1 also decrypts and checks each).
func (Rfs) Verify(ctx context.Context, fl string) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.VerifyFlist(ctx, os.Stdout, fl)
}

// Mount mounts the flist FL read-only at DIR with FUSE until interrupted (Ctrl-C unmounts; STORE=URLS reads those stores).
func (Rfs) Mount(ctx context.Context, fl, dir string) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.MountFlist(ctx, fl, dir)
}
