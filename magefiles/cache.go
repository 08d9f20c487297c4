//go:build mage

package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/dustin/go-humanize"
	"github.com/magefile/mage/mg"
	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/cache"
	"github.com/threefoldtech/zosbuilder/pkg/ccache"
	"github.com/threefoldtech/zosbuilder/pkg/config"
)

// Cache holds the targets of the shared caches (config/cache.conf).
type Cache mg.Namespace

var errNoCacheConf = errors.New("no config/cache.conf: the caches are off (copy config/cache.conf.example)")

// Status prints where artifacts go, this work tree's hits and misses, what the store holds and the compile cache's counters.
func (Cache) Status(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	if e.artifacts == nil {
		return errNoCacheConf
	}
	st, err := e.artifacts.Status(ctx, e.cfg.StateDir)
	if err != nil {
		return err
	}
	st.Compile, st.CompileLines = e.compileStatus(ctx)
	return redact(st.Write(os.Stdout))
}

// Prune removes artifacts older than CACHE_MAX_AGE, then the oldest until the store holds at most CACHE_MAX_SIZE, then unreferenced data.
func (Cache) Prune(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	if e.artifacts == nil {
		return errNoCacheConf
	}
	c := e.cfg.Cache
	res, err := e.artifacts.Prune(ctx, cache.PruneOptions{MaxAge: c.MaxAge, MaxSize: c.MaxSize})
	if err != nil {
		return redact(err)
	}
	e.log.Infof("pruned %s: removed %d artifacts and %d data objects (%s); %d artifacts (%s) remain",
		e.artifacts.Where(), res.Manifests, res.Data, humanize.IBytes(uint64(res.Freed)), res.Kept, humanize.IBytes(uint64(res.KeptBytes)))
	return nil
}

// openArtifacts opens the artifact cache config/cache.conf describes, or
// returns nil without one.
func openArtifacts(cfg *config.Config, log logrus.FieldLogger) (*cache.Cache, error) {
	c := cfg.Cache
	if c == nil {
		return nil, nil
	}
	a, err := cache.Open(cache.Options{URL: c.URL, Region: c.Region, AccessKey: c.AccessKey, SecretKey: c.SecretKey,
		Push: c.Push, StateDir: cfg.StateDir, Log: log})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.File, err)
	}
	return a, nil
}

// compileCache prepares ccache for a kernel step, or returns nil when the
// compile cache is off. A remote storage that does not answer is said once
// (with the artifact store's trouble) and left out.
func (e *env) compileCache(ctx context.Context) (*ccache.Session, error) {
	c := e.cfg.Cache
	if c == nil || c.CompileCache == "off" {
		return nil, nil
	}
	s, err := ccache.Setup(ctx, e.ccacheOptions())
	if err != nil {
		return nil, err
	}
	if s.RemoteErr != nil {
		e.artifacts.Unreachable(ccache.Redact(c.CompileCacheRemote), s.RemoteErr)
	}
	return s, nil
}

func (e *env) ccacheOptions() ccache.Options {
	c := e.cfg.Cache
	return ccache.Options{Dir: c.CompileCacheDir, MaxSize: c.CompileCacheSize, Remote: c.CompileCacheRemote,
		BaseDir: e.cfg.KernelDir, OnUnreachable: e.artifacts.Unreachable}
}

// compileStatus describes the compile cache for cache:status.
func (e *env) compileStatus(ctx context.Context) (string, []string) {
	c := e.cfg.Cache
	if c.CompileCache == "off" {
		return "off (COMPILE_CACHE=off)", nil
	}
	remote := "none (local only)"
	var lines []string
	if c.CompileCacheRemote != "" {
		remote = ccache.Redact(c.CompileCacheRemote)
		if err := ccache.Probe(ctx, c.CompileCacheRemote); err != nil {
			lines = append(lines, err.Error())
		}
	}
	desc := fmt.Sprintf("ccache, local %s (bound %s), remote %s", c.CompileCacheDir, humanize.IBytes(uint64(c.CompileCacheSize)), remote)
	st, err := ccache.ReadStats(ctx, "", c.CompileCacheDir)
	if err != nil {
		return desc, append(lines, err.Error())
	}
	d := st.Since(nil)
	return desc, append(lines, fmt.Sprintf("since its counters were zeroed: %s; %s stored here", d, humanize.IBytes(uint64(d.LocalStorageSize))))
}
