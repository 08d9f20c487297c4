//go:build mage

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/firmware"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// Rfs holds the rfs flist targets: the modules and firmware flists of the build, and tools for any flist.
type Rfs mg.Namespace

// Flists packs the modules and firmware flists and embeds them in INSTALL_DIR/etc/rfs when ENABLE_RFS (stage rfs_flists).
func (Rfs) Flists(ctx context.Context) error { return runStage(ctx, "rfs_flists") }

// PackModules packs lib/modules/<FULL_VERSION> of the kernel_modules tree into dist/flists/modules-<FULL_VERSION>.fl.
func (Rfs) PackModules(ctx context.Context) error {
	mg.CtxDeps(ctx, Kernel.Modules)
	e, err := load()
	if err != nil {
		return err
	}
	_, err = e.packModules(ctx)
	return redact(err)
}

// PackFirmware packs firmware/ (or INSTALL_DIR/lib/firmware when firmware/ is empty) into dist/flists/firmware-<FIRMWARE_TAG or date>.fl.
func (Rfs) PackFirmware(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	// Without firmware of its own, the image's /lib/firmware is packed.
	if has, err := firmware.HasFiles(e.cfg.FirmwareDir); err != nil {
		return err
	} else if !has {
		mg.CtxDeps(ctx, Alpine.Firmware)
	}
	_, err = e.packFirmware(ctx)
	return redact(err)
}

// Upload uploads the .fl manifests in dist/flists to S3_BUCKET/MANIFESTS_SUBPATH (config/rfs.conf).
func (Rfs) Upload(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	fls, _ := filepath.Glob(filepath.Join(e.flistDir(), "*.fl"))
	if len(fls) == 0 {
		return fmt.Errorf("no .fl manifests in %s: run mage rfs:packModules or rfs:packFirmware first", e.flistDir())
	}
	return redact(e.uploadManifests(ctx, fls))
}

// Pack packs SRC_DIR into the flist FL, uploading blobs to STORES ("[xx-yy=]URL,...": dir://, s3://, s3s://).
func (Rfs) Pack(ctx context.Context, src, fl, stores string) error {
	e, err := load()
	if err != nil {
		return err
	}
	st, err := store.Parse(stores)
	if err != nil {
		return err
	}
	stats, err := flist.Pack(ctx, src, fl, flist.PackOptions{Store: st, Parallel: e.cfg.RFSJobs, Progress: &progress.Options{}, Log: e.log})
	if err != nil {
		return err
	}
	e.log.Infof("%s: %s", fl, stats)
	return nil
}

// Unpack extracts the flist FL into DIR, fetching blobs from the stores it routes to (ALLOW_ROUTES: see README).
func (Rfs) Unpack(ctx context.Context, fl, dir string) error {
	e, routes, err := loadForRoutes()
	if err != nil {
		return err
	}
	return routeHint(flist.Unpack(ctx, fl, dir, flist.UnpackOptions{Log: e.log, Routes: routes}))
}

// Tree prints the flist FL as a tree, exactly as `rfs flist tree` does.
func (Rfs) Tree(fl string) error { return flist.Tree(os.Stdout, fl) }

// Inspect prints every entry of the flist FL, exactly as `rfs flist inspect` does (with the correct gid).
func (Rfs) Inspect(fl string) error { return flist.Inspect(os.Stdout, fl) }

// Verify checks that every block of the flist FL is in its routed store (DEEP=1 also decrypts and checks each).
func (Rfs) Verify(ctx context.Context, fl string) error {
	e, routes, err := loadForRoutes()
	if err != nil {
		return err
	}
	deep := truthy(os.Getenv("DEEP"))
	rep, err := flist.Verify(ctx, fl, flist.VerifyOptions{Deep: deep, Routes: routes, Log: e.log, Progress: &progress.Options{}})
	fmt.Println(rep)
	return routeHint(err)
}

// Mount mounts the flist FL read-only at DIR with FUSE until interrupted (Ctrl-C unmounts).
func (Rfs) Mount(ctx context.Context, fl, dir string) error {
	e, routes, err := loadForRoutes()
	if err != nil {
		return err
	}
	m, err := flist.Mount(ctx, fl, dir, flist.MountOptions{CacheDir: filepath.Join(e.cfg.CacheDir, "rfs-cache"), Routes: routes, Log: e.log})
	if err != nil {
		return routeHint(err)
	}
	e.log.Infof("%s mounted on %s; Ctrl-C unmounts", fl, dir)
	m.Wait()
	return nil
}

func (e *env) flistDir() string { return filepath.Join(e.cfg.DistDir, "flists") }

// loadForRoutes loads the config and the route policy of the flist readers:
// the build's own local store, plus ALLOW_ROUTES ("loopback,dir:///path").
func loadForRoutes() (*env, store.RoutePolicy, error) {
	e, err := load()
	if err != nil {
		return nil, store.RoutePolicy{}, err
	}
	p, err := store.ParseRoutePolicy(os.Getenv("ALLOW_ROUTES"))
	if err != nil {
		return nil, p, fmt.Errorf("ALLOW_ROUTES: %w", err)
	}
	p.AllowDirs = append(p.AllowDirs, filepath.Join(e.flistDir(), "store"))
	return e, p, nil
}

// routeHint says how to allow a refused route.
func routeHint(err error) error {
	if errors.Is(err, store.ErrRouteRefused) {
		return fmt.Errorf("%w (ALLOW_ROUTES=loopback,dir:///path allows these; link-local addresses never)", err)
	}
	return err
}

// s3Config maps config/rfs.conf onto the store's settings.
func (e *env) s3Config() store.S3Config {
	r := e.cfg.RFS
	return store.S3Config{
		Endpoint: r.S3Endpoint, Region: r.S3Region, Bucket: r.S3Bucket, Prefix: r.S3Prefix,
		AccessKey: r.S3AccessKey, SecretKey: r.S3SecretKey,
		ReadAccessKey: r.ReadAccessKey, ReadSecretKey: r.ReadSecretKey,
		RouteEndpoint: r.RouteEndpoint, RoutePath: r.RoutePath, RouteRegion: r.RouteRegion,
		ManifestsSubpath: r.ManifestsSubpath,
	}
}

// packOptions chooses the store: S3 from rfs.conf, with the read-only
// runtime route written into the flist, or a local dir:// store under
// DIST_DIR when there is no rfs.conf.
func (e *env) packOptions() (flist.PackOptions, error) {
	opt := flist.PackOptions{Parallel: e.cfg.RFSJobs, Progress: &progress.Options{}, Log: e.log}
	if e.cfg.RFS == nil {
		dir := filepath.Join(e.flistDir(), "store")
		e.localStoreOnce.Do(func() {
			e.log.Infof("no %s: packing flists to the local store dir://%s", e.cfg.Path(config.RFSConfFile), dir)
		})
		opt.Store = store.NewDir(dir)
		return opt, nil
	}
	s3 := e.s3Config()
	packURL, err := s3.PackURL()
	if err != nil {
		return opt, fmt.Errorf("%s: %w", e.cfg.RFS.File, err)
	}
	routeURL, err := s3.RouteURL()
	if err != nil {
		return opt, fmt.Errorf("%s: %w", e.cfg.RFS.File, err)
	}
	if opt.Store, err = store.Parse(packURL); err != nil {
		return opt, err
	}
	opt.RouteOverride = []store.Route{{Start: 0, End: 255, URL: routeURL}}
	return opt, nil
}

func (e *env) pack(ctx context.Context, src, fl string) error {
	opt, err := e.packOptions()
	if err != nil {
		return err
	}
	stats, err := flist.Pack(ctx, src, fl, opt)
	if err != nil {
		return err
	}
	e.log.Infof("%s: %s", filepath.Base(fl), stats)
	return nil
}

func (e *env) packModules(ctx context.Context) (string, error) {
	full, err := e.fullVersion(ctx)
	if err != nil {
		return "", err
	}
	root, err := e.modulesRoot(full)
	if err != nil {
		return "", err
	}
	fl := filepath.Join(e.flistDir(), "modules-"+full+".fl")
	return fl, e.pack(ctx, filepath.Join(root, "lib", "modules", full), fl)
}

// firmwareTag is FIRMWARE_TAG, else the build date (SOURCE_DATE_EPOCH's
// when set, so a reproducible build names it the same way).
func (e *env) firmwareTag() string {
	if e.cfg.FirmwareTag != "" {
		return e.cfg.FirmwareTag
	}
	t := time.Now()
	if e.cfg.SourceDateEpoch != nil {
		t = time.Unix(*e.cfg.SourceDateEpoch, 0)
	}
	return t.UTC().Format("20060102")
}

func (e *env) packFirmware(ctx context.Context) (string, error) {
	src, err := e.firmwareFlistSource()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	fl := filepath.Join(e.flistDir(), "firmware-"+e.firmwareTag()+".fl")
	return fl, e.pack(ctx, src, fl)
}

func (e *env) uploadManifests(ctx context.Context, fls []string) error {
	if e.cfg.RFS == nil {
		return fmt.Errorf("uploading manifests needs %s (see config/rfs.conf.example)", e.cfg.Path(config.RFSConfFile))
	}
	for _, fl := range fls {
		loc, err := e.s3Config().UploadManifest(ctx, fl)
		if err != nil {
			return err
		}
		e.log.Infof("uploaded %s to %s", filepath.Base(fl), loc)
	}
	return nil
}

func rfsFlists(e *env) stage.Stage {
	inputs := []string{e.cfg.FirmwareDir}
	if e.cfg.RFS != nil {
		inputs = append(inputs, e.configFile(config.RFSConfFile))
	}
	return stage.Stage{
		Config: e.values("ENABLE_RFS", "FIRMWARE_TAG", "SOURCE_DATE_EPOCH"),
		Inputs: inputs,
		Run: func(ctx context.Context) error {
			embedded := filepath.Join(e.cfg.InstallDir, "etc", "rfs")
			// Manifests of an earlier run (another kernel version or tag)
			// must not linger in the image.
			if err := os.RemoveAll(embedded); err != nil {
				return err
			}
			if !e.cfg.EnableRFS {
				e.log.Info("ENABLE_RFS is false: no flists packed or embedded")
				return nil
			}
			modFL, err := e.packModules(ctx)
			if err != nil {
				return err
			}
			fwFL, err := e.packFirmware(ctx)
			if err != nil {
				return err
			}
			fwName := "firmware-latest.fl"
			if e.cfg.FirmwareTag != "" {
				fwName = filepath.Base(fwFL)
			}
			for src, name := range map[string]string{modFL: filepath.Base(modFL), fwFL: fwName} {
				if err := fsutil.CopyFile(src, filepath.Join(embedded, name), 0o644); err != nil {
					return err
				}
			}
			if e.cfg.RFS != nil && e.cfg.RFS.UploadManifests {
				return e.uploadManifests(ctx, []string{modFL, fwFL})
			}
			return nil
		},
	}
}
