package kernel

import (
	"context"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/cache"
	"github.com/threefoldtech/zosbuilder/pkg/ccache"
)

// watchInterval is how often the compile cache's remote storage is
// probed during a kernel build.
const watchInterval = 10 * time.Second

// StageOptions are what the kernel_modules and kernel_build stages need.
type StageOptions struct {
	Source SourceOptions
	Build  Options
	// Artifacts is the shared artifact cache; nil is off.
	Artifacts *cache.Cache
	// CompileCache puts ccache in front of gcc; nil is off.
	CompileCache *ccache.Session
}

// build is Build with the compile cache's environment added to make's.
func (o StageOptions) build() Options {
	b := o.Build
	if o.CompileCache != nil {
		b.Env = append(append([]string(nil), b.Env...), o.CompileCache.Env()...)
	}
	return b
}

// Modules is the kernel_modules stage. With an artifact cache it restores
// the installed modules and the objtree built elsewhere from the same
// source, config and toolchain, leaving the source extraction to
// kernel_build (which needs it to relink); otherwise it extracts the
// source, builds and installs the modules (through the compile cache) and
// publishes them. It returns the options olddefconfig dropped (none on a
// restore: the build that published checked them).
func Modules(ctx context.Context, opt StageOptions) ([]Dropped, error) {
	sum, err := SourceSHA256(ctx, opt.Source)
	if err != nil {
		return nil, err
	}
	var dropped []Dropped
	build := func(ctx context.Context) error {
		if _, err := Source(ctx, opt.Build.Dir, opt.Source); err != nil {
			return err
		}
		var before ccache.Stats
		if opt.CompileCache != nil {
			before, _ = opt.CompileCache.Stats(ctx)
			defer opt.CompileCache.Watch(ctx, watchInterval)()
		}
		root, d, err := BuildModules(ctx, opt.build())
		dropped = d
		if err != nil {
			return err
		}
		if opt.CompileCache != nil {
			if after, err := opt.CompileCache.Stats(ctx); err == nil {
				logging.OrDiscard(opt.Build.Log).Infof("kernel: %s", after.Since(before))
			}
		}
		logging.OrDiscard(opt.Build.Log).Infof("modules of %s installed in %s", opt.Build.FullVersion, root)
		return nil
	}
	if opt.Artifacts == nil {
		err := build(ctx)
		return dropped, err
	}
	recipe, err := ModulesRecipe(ctx, opt.Build, sum)
	if err != nil {
		return nil, err
	}
	parts, err := Layout{opt.Build.Dir}.ArtifactParts()
	if err != nil {
		return nil, err
	}
	// Not `return dropped, Do(...)`: Go does not order reading dropped
	// after the call that sets it.
	err = opt.Artifacts.Do(ctx, cache.Artifact{Recipe: recipe, Parts: parts, Log: opt.Build.Log}, build)
	return dropped, err
}

// Image is the kernel_build stage: the source in place (extracted now if
// kernel_modules restored its artifact instead of building), then
// BuildImage in the objtree kernel_modules left.
func Image(ctx context.Context, opt StageOptions, img ImageOptions) ([]Dropped, error) {
	if _, err := Source(ctx, opt.Build.Dir, opt.Source); err != nil {
		return nil, err
	}
	if opt.CompileCache != nil {
		defer opt.CompileCache.Watch(ctx, watchInterval)()
	}
	return BuildImage(ctx, opt.build(), img)
}
