package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// subtype is the FUSE subtype rfs mounts with: /proc/mounts shows the type
// fuse.g8ufs (the units check for fuse*).
const subtype = "g8ufs"

// detachWait is how long a stopped mounter keeps serving the files still
// open on a lazily unmounted flist before it exits.
const detachWait = 5 * time.Second

// mountCommand runs `rfs mount`: checks TARGET, then serves the mount in
// the foreground, or starts the daemon (-d) and returns once it is live.
func mountCommand(mo *mountOptions, stderr io.Writer) error {
	if err := mo.absolute(); err != nil {
		return err
	}
	log := logrus.New()
	log.SetLevel(logLevel(mo.debug))
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	log.SetOutput(stderr)
	if mo.logFile != "" {
		f, err := os.OpenFile(mo.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("log file: %w", err)
		}
		defer f.Close()
		log.SetOutput(f)
	}
	child := isDaemonChild()
	if child {
		// The pipe to the parent is not for the processes this one starts.
		syscall.CloseOnExec(readyFD)
	}
	if err := checkTarget(mo.target, log); err != nil {
		if child {
			return reportReady(err)
		}
		return err
	}
	if mo.daemon && !child {
		return startDaemon(mo)
	}
	return serve(mo, log, child)
}

// absolute makes the paths absolute: the daemon runs in /.
func (mo *mountOptions) absolute() error {
	for _, p := range []*string{&mo.meta, &mo.cache, &mo.logFile, &mo.target} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	return nil
}

// checkTarget refuses a TARGET that is not a directory or is already a
// mount point (what `mountpoint -q` tests, as rfs does). A dead FUSE mount
// on TARGET, left by a mounter that was killed, is detached first: nothing
// can use it, and refusing it would keep a supervised mounter from ever
// coming back.
func checkTarget(target string, log logrus.FieldLogger) error {
	for detached := false; ; detached = true {
		var st os.FileInfo
		err := retryEIO(func() (err error) {
			st, err = os.Stat(target)
			return err
		})
		dead := disconnected(err)
		var fstype string
		var mounted bool
		if err == nil {
			fstype, mounted, err = mountAt(target)
			dead = mounted && strings.HasPrefix(fstype, "fuse") && deadFUSE(target)
		}
		if dead && !detached {
			log.Warnf("target %s is a dead FUSE mount (its server is gone): detaching it", target)
			if err := detach(target); err != nil {
				return fmt.Errorf("target %s is a dead FUSE mount and detaching it failed: %w", target, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
		if mounted {
			return fmt.Errorf("target %s is already a mount point", target)
		}
		if !st.IsDir() {
			return fmt.Errorf("target %s is not a directory", target)
		}
		return nil
	}
}

// serve mounts the flist and serves it until it is unmounted (umount,
// fusermount -u) or the process gets SIGINT or SIGTERM, which unmount it.
// A daemon child tells its parent how the mount went.
func serve(mo *mountOptions, log *logrus.Logger, child bool) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	m, err := mountFlist(mo, log)
	if child {
		err = reportReady(err)
	}
	if err != nil {
		return err
	}
	log.Infof("mounted %s on %s (pid %d)", mo.meta, mo.target, os.Getpid())
	done := make(chan struct{})
	go func() {
		m.Wait()
		close(done)
	}()
	select {
	case <-done:
		log.Infof("%s was unmounted", mo.target)
		return nil
	case s := <-sigs:
		log.Infof("%s: unmounting %s", s, mo.target)
	}
	if err := m.Unmount(); err != nil {
		log.WithError(err).Warnf("unmount failed (files still open?): detaching %s", mo.target)
		if err := detach(mo.target); err != nil {
			return fmt.Errorf("detach %s: %w", mo.target, err)
		}
		select {
		case <-done:
		case <-time.After(detachWait):
			log.Warnf("files on %s still open after %s; exiting", mo.target, detachWait)
		}
	}
	return nil
}

// mountFlist mounts the flist with rfs's options and a store that retries.
func mountFlist(mo *mountOptions, log *logrus.Logger) (*flist.Mounted, error) {
	st, err := openStore(mo.meta, log)
	if err != nil {
		return nil, err
	}
	opt := flist.MountOptions{
		CacheDir:   mo.cache,
		CacheSize:  mo.cacheSize,
		Store:      st,
		Log:        log,
		FsName:     strconv.Itoa(os.Getpid()),
		Subtype:    subtype,
		AllowOther: true,
	}
	if mo.cacheSize == 0 {
		opt.CacheSize = -1 // --cache-size 0: unbounded, as rfs
	}
	if mo.debug >= 2 {
		opt.FUSELog = stdlog.New(log.WriterLevel(logrus.TraceLevel), "fuse: ", 0)
	}
	log.Debugf("mounting %s on %s (cache %s, bound %d bytes)", mo.meta, mo.target, mo.cache, mo.cacheSize)
	return flist.Mount(context.Background(), mo.meta, mo.target, opt)
}

// nodeRoutes is the route policy of the mounter: loopback and dir:// routes
// are allowed, link-local and metadata addresses refused (store.RoutePolicy).
var nodeRoutes = store.RoutePolicy{AllowLoopback: true, AllowDirs: []string{"/"}}

// openStore opens the flist's routes behind a store that retries transient
// errors (a node's network comes and goes), logging each retry.
func openStore(fl string, log logrus.FieldLogger) (store.Store, error) {
	r, err := flist.Open(fl)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	routes, err := r.Routes(context.Background())
	if err != nil {
		return nil, err
	}
	// A node's flists come from its image or its operator's server: local
	// stores are legitimate there, cloud metadata addresses never are.
	router, err := store.OpenRoutesWith(routes, store.Options{Policy: &nodeRoutes})
	if err != nil {
		return nil, fmt.Errorf("flist %s: open its stores: %w", fl, err)
	}
	return store.NewRetry(router, store.RetryOptions{
		OnRetry: func(op string, id []byte, attempt int, wait time.Duration, err error) {
			log.WithField("blob", store.Hex(id)).Warnf("store %s failed (attempt %d), retrying in %s: %v",
				op, attempt, wait.Round(time.Millisecond), err)
		},
	}), nil
}

// detach lazily unmounts dir: it leaves the namespace now, and goes away
// once its last open file is closed.
func detach(dir string) error {
	if os.Geteuid() == 0 {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("umount -l %s: %w", dir, err)
		}
		return nil
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(bin); err == nil {
			if out, err := exec.Command(p, "-u", "-z", dir).CombinedOutput(); err != nil {
				return fmt.Errorf("%s -u -z %s: %w: %s", bin, dir, err, out)
			}
			return nil
		}
	}
	return errors.New("not root, and no fusermount3 or fusermount in PATH")
}
