package flist

import (
	"context"
	"fmt"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// openStore returns s, or a router over the flist's own routes.
func openStore(ctx context.Context, r *Reader, s store.Store) (store.Store, error) {
	if s != nil {
		return s, nil
	}
	routes, err := r.Routes(ctx)
	if err != nil {
		return nil, err
	}
	router, err := store.OpenRoutes(routes)
	if err != nil {
		return nil, fmt.Errorf("flist %s: open its stores: %w", r.path, err)
	}
	return router, nil
}
