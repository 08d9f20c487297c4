//go:build mage

package main

import (
	"context"
	"os"

	"github.com/magefile/mage/mg"
)

// Cache holds the targets of the shared caches (config/cache.conf).
type Cache mg.Namespace

// Status prints where artifacts go, this work tree's hits and misses, what the store holds and the compile cache's counters.
func (Cache) Status(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.CacheStatus(ctx, os.Stdout)
}

// Prune removes artifacts older than CACHE_MAX_AGE, then the oldest until the store holds at most CACHE_MAX_SIZE, then unreferenced data.
func (Cache) Prune(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.CachePrune(ctx)
}
