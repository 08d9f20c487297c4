package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dustin/go-humanize"
	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/cache"
	"github.com/threefoldtech/zosbuilder/pkg/ccache"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/hosttools"
)

// ErrNoCacheConf is what cache:status and cache:prune return without
// config/cache.conf.
var ErrNoCacheConf = errors.New("no config/cache.conf: the caches are off (copy config/cache.conf.example)")

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

// CacheStatus prints where artifacts go, this work tree's hits and misses,
// what the store holds and the compile cache's counters.
func (e *Env) CacheStatus(ctx context.Context, w io.Writer) error {
	if e.artifacts == nil {
		return ErrNoCacheConf
	}
	st, err := e.artifacts.Status(ctx, e.cfg.StateDir)
	if err != nil {
		return e.redact(err)
	}
	st.Compile, st.CompileLines = e.compileStatus(ctx)
	return e.redact(st.Write(w))
}

// CachePrune removes artifacts older than CACHE_MAX_AGE, then the oldest
// until the store holds at most CACHE_MAX_SIZE, then unreferenced data.
func (e *Env) CachePrune(ctx context.Context) error {
	if e.artifacts == nil {
		return ErrNoCacheConf
	}
	c := e.cfg.Cache
	res, err := e.artifacts.Prune(ctx, cache.PruneOptions{MaxAge: c.MaxAge, MaxSize: c.MaxSize})
	if err != nil {
		return e.redact(err)
	}
	e.log.Infof("pruned %s: removed %d artifacts and %d data objects (%s); %d artifacts (%s) remain",
		e.artifacts.Where(), res.Manifests, res.Data, humanize.IBytes(uint64(res.Freed)), res.Kept, humanize.IBytes(uint64(res.KeptBytes)))
	return nil
}

// compileCacheOn says whether the kernel compiles through ccache.
func (e *Env) compileCacheOn() bool {
	c := e.cfg.Cache
	return c != nil && c.CompileCache != "off"
}

// compileCacheTools is ccache when the kernel compiles through it.
func (e *Env) compileCacheTools() []hosttools.Tool {
	if !e.compileCacheOn() {
		return nil
	}
	return hosttools.Named("ccache")
}

// compileCache prepares ccache for a kernel step, or returns nil when the
// compile cache is off. A remote storage that does not answer is said once
// (with the artifact store's trouble) and left out.
func (e *Env) compileCache(ctx context.Context) (*ccache.Session, error) {
	if !e.compileCacheOn() {
		return nil, nil
	}
	c := e.cfg.Cache
	s, err := ccache.Setup(ctx, ccache.Options{Dir: c.CompileCacheDir, MaxSize: c.CompileCacheSize, Remote: c.CompileCacheRemote,
		BaseDir: e.cfg.KernelDir, OnUnreachable: e.artifacts.Unreachable})
	if err != nil {
		return nil, err
	}
	if s.RemoteErr != nil {
		e.artifacts.Unreachable(ccache.Redact(c.CompileCacheRemote), s.RemoteErr)
	}
	return s, nil
}

// compileStatus describes the compile cache for cache:status.
func (e *Env) compileStatus(ctx context.Context) (string, []string) {
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
