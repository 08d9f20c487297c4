package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/firmware"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/sbom"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// PackModules runs kernel_modules when needed and packs lib/modules/<FULL_VERSION> of its tree into dist/flists/modules-<FULL_VERSION>.fl.
func (e *Env) PackModules(ctx context.Context) error {
	if err := e.Run(ctx, "kernel_modules"); err != nil {
		return err
	}
	_, err := e.packModules(ctx, e.log)
	return e.redact(err)
}

// PackFirmware packs every linux-firmware* package of the mirror with firmware/ on top (FIRMWARE_FLIST_SOURCE=alpine), or firmware/ alone (or, when it has no firmware, the image's /lib/firmware after alpine_firmware) with FIRMWARE_FLIST_SOURCE=local, into dist/flists/firmware-<FIRMWARE_TAG or date>.fl.
func (e *Env) PackFirmware(ctx context.Context) error {
	if has, err := firmware.HasFiles(e.cfg.FirmwareDir); err != nil {
		return err
	} else if !has && e.cfg.FirmwareFlistSource == "local" {
		if err := e.Run(ctx, "alpine_firmware"); err != nil {
			return err
		}
	}
	_, err := e.packFirmware(ctx, e.log)
	return e.redact(err)
}

// UploadManifests uploads the .fl manifests in dist/flists to S3_BUCKET/MANIFESTS_SUBPATH (config/rfs.conf).
func (e *Env) UploadManifests(ctx context.Context) error {
	fls, _ := filepath.Glob(filepath.Join(e.flistDir(), "*.fl"))
	if len(fls) == 0 {
		return fmt.Errorf("no .fl manifests in %s: run mage rfs:packModules or rfs:packFirmware first", e.flistDir())
	}
	return e.redact(e.uploadManifests(ctx, e.log, fls))
}

// PackFlist packs src into the flist fl, uploading blobs to stores ("[xx-yy=]URL,...": dir://, s3://, s3s://).
func (e *Env) PackFlist(ctx context.Context, src, fl, stores string) error {
	st, err := store.Parse(stores)
	if err != nil {
		return err
	}
	stats, err := flist.Pack(ctx, src, fl, flist.PackOptions{Store: st, Parallel: e.cfg.RFSJobs, Progress: &progress.Options{Log: e.log}, Log: e.log})
	if err != nil {
		return err
	}
	e.log.Info(stats)
	return nil
}

// UnpackFlist extracts the flist fl into dir, fetching blobs from the stores it routes to (ALLOW_ROUTES: see README), or from STORE.
func (e *Env) UnpackFlist(ctx context.Context, fl, dir string) error {
	routes, st, err := e.readStores()
	if err != nil {
		return err
	}
	return routeHint(flist.Unpack(ctx, fl, dir, flist.UnpackOptions{Log: e.log, Routes: routes, Store: st}))
}

// VerifyFlist checks that every block of the flist fl is in its routed store (DEEP=1 also decrypts and checks each) and prints the report.
func (e *Env) VerifyFlist(ctx context.Context, w io.Writer, fl string) error {
	routes, st, err := e.readStores()
	if err != nil {
		return err
	}
	deep, err := e.flag("DEEP")
	if err != nil {
		return err
	}
	rep, err := flist.Verify(ctx, fl, flist.VerifyOptions{Deep: deep, Routes: routes, Store: st, Log: e.log, Progress: &progress.Options{}})
	fmt.Fprintln(w, rep)
	return routeHint(err)
}

// MountFlist mounts the flist fl read-only at dir with FUSE until ctx ends or it is unmounted.
func (e *Env) MountFlist(ctx context.Context, fl, dir string) error {
	routes, st, err := e.readStores()
	if err != nil {
		return err
	}
	m, err := flist.Mount(ctx, fl, dir, flist.MountOptions{CacheDir: filepath.Join(e.cfg.CacheDir, "rfs-cache"), Routes: routes, Store: st, Log: e.log})
	if err != nil {
		return routeHint(err)
	}
	e.log.Infof("%s mounted on %s; Ctrl-C unmounts", fl, dir)
	m.Wait()
	return nil
}

// readRoutes is the route policy of the flist readers: the build's own
// local store, plus ALLOW_ROUTES ("loopback,dir:///path").
func (e *Env) readRoutes() (store.RoutePolicy, error) {
	p, err := store.ParseRoutePolicy(e.getenv("ALLOW_ROUTES"))
	if err != nil {
		return p, fmt.Errorf("ALLOW_ROUTES: %w", err)
	}
	p.AllowDirs = append(p.AllowDirs, filepath.Join(e.flistDir(), "store"))
	return p, nil
}

// readStores is readRoutes and the stores STORE names ("[xx-yy=]URL,...",
// as rfs:pack's STORES) to read instead of an flist's routes, e.g.
// STORE=dir://$PWD/dist/flists/store for flists that route where a node,
// not this machine, reads them (LOCAL_STORE_ROUTE). Without STORE the
// store is nil: the flist's routes.
func (e *Env) readStores() (store.RoutePolicy, store.Store, error) {
	routes, err := e.readRoutes()
	if err != nil {
		return routes, nil, err
	}
	spec := e.getenv("STORE")
	if spec == "" {
		return routes, nil, nil
	}
	r, err := store.Parse(spec)
	if err != nil {
		return routes, nil, fmt.Errorf("STORE: %w", err)
	}
	return routes, r, nil
}

// routeHint says how to allow a refused route.
func routeHint(err error) error {
	if errors.Is(err, store.ErrRouteRefused) {
		return fmt.Errorf("%w (ALLOW_ROUTES=loopback,dir:///path allows these; link-local addresses never)", err)
	}
	return err
}

// RouteEdit changes the routes of a flist and returns the new ones (flist.AddRoutes, flist.SetRoutes).
type RouteEdit func(ctx context.Context, fl string, routes []store.Route) ([]store.Route, error)

// ListStores prints the routes of the flist fl as `rfs config store list` does, passwords masked.
func ListStores(ctx context.Context, w io.Writer, fl string) error {
	routes, err := flist.ListRoutes(ctx, fl)
	if err != nil {
		return err
	}
	return flist.WriteRoutes(w, routes)
}

// DeleteStores removes the routes of the flist fl whose store is storeURL and prints the routes left.
func DeleteStores(ctx context.Context, w io.Writer, fl, storeURL string) error {
	routes, err := flist.DeleteRoutes(ctx, fl, storeURL)
	if err != nil {
		return err
	}
	return flist.WriteRoutes(w, routes)
}

// EditStores applies edit with the routes parsed from stores ("[xx-yy=]URL,...", rfs.conf meaning the read-only route of config/rfs.conf) and prints the routes the flist has then.
func (e *Env) EditStores(ctx context.Context, w io.Writer, fl, stores string, edit RouteEdit) error {
	routes, err := store.ParseRoutes(stores, e.confRoute)
	if err != nil {
		return e.redact(err)
	}
	if routes, err = edit(ctx, fl, routes); err != nil {
		return e.redact(err)
	}
	return flist.WriteRoutes(w, routes)
}

// confRoute is the read-only route of config/rfs.conf, what a pack writes.
func (e *Env) confRoute() (string, error) {
	if e.cfg.RFS == nil {
		return "", fmt.Errorf("the store %q is the route of %s, which does not exist (see config/rfs.conf.example)",
			store.ConfRoute, e.cfg.Path(config.RFSConfFile))
	}
	u, err := e.cfg.RFS.S3Config.RouteURL()
	if err != nil {
		return "", fmt.Errorf("%s: %w", e.cfg.RFS.File, err)
	}
	return u, nil
}

func (e *Env) flistDir() string { return filepath.Join(e.cfg.DistDir, "flists") }

// reuseIndex is where the pack of fl records which files it read, for the
// next pack to skip the unchanged ones (flist.PackOptions.ReuseIndex): with
// the build's state, since it names this work tree's inodes.
func (e *Env) reuseIndex(fl string) string {
	return filepath.Join(e.cfg.StateDir, "flist-reuse", filepath.Base(fl)+".reuse")
}

// packOptions chooses the store: S3 from rfs.conf, with the read-only
// runtime route written into the flist, or a local dir:// store under
// DIST_DIR when there is no rfs.conf.
func (e *Env) packOptions(log logrus.FieldLogger) (flist.PackOptions, error) {
	opt := flist.PackOptions{Parallel: e.cfg.RFSJobs, Time: e.cfg.SourceDateEpoch, Progress: &progress.Options{Log: log}, Log: log}
	if e.cfg.RFS == nil {
		dir := filepath.Join(e.flistDir(), "store")
		opt.Store = store.NewDir(dir)
		route := opt.Store.Routes()[0].URL
		if e.cfg.LocalStoreRoute != "" {
			route = e.cfg.LocalStoreRoute
			opt.RouteOverride = []store.Route{{Start: 0, End: 255, URL: route}}
		}
		e.localStoreOnce.Do(func() {
			log.Infof("no %s: packing flists to the local store dir://%s, routed to %s (LOCAL_STORE_ROUTE)", e.cfg.Path(config.RFSConfFile), dir, route)
		})
		return opt, nil
	}
	s3 := e.cfg.RFS.S3Config
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

func (e *Env) pack(ctx context.Context, log logrus.FieldLogger, src, fl string) error {
	opt, err := e.packOptions(log)
	if err != nil {
		return err
	}
	opt.ReuseIndex = e.reuseIndex(fl)
	stats, err := flist.Pack(ctx, src, fl, opt)
	if err != nil {
		return err
	}
	summary := stats.String()
	if e.cfg.RFS != nil && e.cfg.RFS.UploadManifests {
		loc, err := e.cfg.RFS.S3Config.UploadManifest(ctx, fl)
		if err != nil {
			return err
		}
		summary += "; manifest uploaded to " + loc
	}
	log.Info(summary)
	return nil
}

func (e *Env) packModules(ctx context.Context, log logrus.FieldLogger) (sbom.FlistSource, error) {
	full, err := e.fullVersion(ctx)
	if err != nil {
		return sbom.FlistSource{}, err
	}
	root, err := e.modulesRoot(full)
	if err != nil {
		return sbom.FlistSource{}, err
	}
	fl := sbom.FlistSource{Path: filepath.Join(e.flistDir(), "modules-"+full+".fl"), Kind: sbom.FlistModules,
		MountPoint: "lib/modules/" + full, Source: filepath.Join(root, "lib", "modules", full)}
	return fl, e.pack(ctx, log, fl.Source, fl.Path)
}

// firmwareTag is FIRMWARE_TAG, else the build date (SOURCE_DATE_EPOCH's
// when set, so a reproducible build names it the same way).
func (e *Env) firmwareTag() string {
	if e.cfg.FirmwareTag != "" {
		return e.cfg.FirmwareTag
	}
	t := time.Now()
	if e.cfg.SourceDateEpoch != nil {
		t = time.Unix(*e.cfg.SourceDateEpoch, 0)
	}
	return t.UTC().Format("20060102")
}

func (e *Env) packFirmware(ctx context.Context, log logrus.FieldLogger) (sbom.FlistSource, error) {
	src, owners, err := e.firmwareTree(ctx, log)
	if err != nil {
		return sbom.FlistSource{}, err
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return sbom.FlistSource{}, err
	}
	fl := sbom.FlistSource{Path: filepath.Join(e.flistDir(), "firmware-"+e.firmwareTag()+".fl"), Kind: sbom.FlistFirmware,
		MountPoint: "lib/firmware", Source: src, Packages: owners}
	return fl, e.pack(ctx, log, src, fl.Path)
}

func (e *Env) uploadManifests(ctx context.Context, log logrus.FieldLogger, fls []string) error {
	if e.cfg.RFS == nil {
		return fmt.Errorf("uploading manifests needs %s (see config/rfs.conf.example)", e.cfg.Path(config.RFSConfFile))
	}
	for _, fl := range fls {
		loc, err := e.cfg.RFS.S3Config.UploadManifest(ctx, fl)
		if err != nil {
			return err
		}
		log.Infof("uploaded %s to %s", filepath.Base(fl), loc)
	}
	return nil
}

// embeddedFlists is where the image carries the flist manifests.
func (e *Env) embeddedFlists() string { return filepath.Join(e.cfg.InstallDir, "etc", "rfs") }

func rfsFlists(e *Env) stage.Stage {
	inputs := []string{e.cfg.FirmwareDir}
	if e.cfg.RFS != nil {
		inputs = append(inputs, e.configFile(config.RFSConfFile))
	}
	if e.cfg.AlpineExtraKeys != "" {
		inputs = append(inputs, e.cfg.AlpineExtraKeys)
	}
	var outputs []string
	if e.cfg.EnableRFS {
		// Folders: the manifests' names hold FULL_VERSION, which may take
		// reading the kernel tarball to know.
		outputs = []string{e.flistDir(), e.embeddedFlists()}
	}
	return stage.Stage{
		Config: e.values("ENABLE_RFS", "FIRMWARE_TAG", "SOURCE_DATE_EPOCH", "FIRMWARE_FLIST_SOURCE",
			"ALPINE_MIRROR", "ALPINE_VERSION", "ALPINE_ARCH", "ALPINE_EXTRA_KEYS", "LOCAL_STORE_ROUTE"),
		Inputs:  inputs,
		Outputs: outputs,
		Run: func(ctx context.Context, log logrus.FieldLogger) error {
			embedded := e.embeddedFlists()
			// Manifests of an earlier run (another kernel version or tag)
			// must not linger in the image.
			if err := os.RemoveAll(embedded); err != nil {
				return err
			}
			if !e.cfg.EnableRFS {
				log.Info("ENABLE_RFS is false: no flists packed or embedded")
				return nil
			}
			modFL, err := e.packModules(ctx, log)
			if err != nil {
				return err
			}
			fwFL, err := e.packFirmware(ctx, log)
			if err != nil {
				return err
			}
			// The full set is known only now: report against it.
			if e.cfg.FirmwareFlistSource == "alpine" {
				tree, err := firmware.FlistTree(ctx, fwFL.Path)
				if err != nil {
					return err
				}
				if err := e.reportFirmware(ctx, log, tree); err != nil {
					return err
				}
			}
			fwName := "firmware-latest.fl"
			if e.cfg.FirmwareTag != "" {
				fwName = filepath.Base(fwFL.Path)
			}
			// The image carries the manifests; the SBOM (initramfs_create)
			// describes them with the trees they were packed from.
			var packed []sbom.FlistSource
			for _, fl := range []struct {
				src  sbom.FlistSource
				name string
			}{{modFL, filepath.Base(modFL.Path)}, {fwFL, fwName}} {
				dst := filepath.Join(embedded, fl.name)
				if err := fsutil.CopyFile(fl.src.Path, dst, 0o644); err != nil {
					return err
				}
				fl.src.Path = dst
				packed = append(packed, fl.src)
			}
			return e.writePackedFlists(packed)
		},
	}
}
