package flist

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// fetcher returns the plain content of blocks from a store, through an
// optional on-disk cache of decrypted blocks in rfs's cache layout
// (<cache>/<hex[0:2]>/<hex[2:4]>/<hex(id)>).
type fetcher struct {
	store store.Store
	cache string
}

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

func (f *fetcher) cachePath(id [HashSize]byte) string {
	h := store.Hex(id[:])
	return filepath.Join(f.cache, h[0:2], h[2:4], h)
}

// block returns the plain content of b.
func (f *fetcher) block(ctx context.Context, b Block) ([]byte, error) {
	if f.cache != "" {
		plain, err := os.ReadFile(f.cachePath(b.ID))
		if err == nil && len(plain) > 0 {
			return plain, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("block cache: %w", err)
		}
	}
	blob, err := f.store.Get(ctx, b.ID[:])
	if err != nil {
		return nil, err
	}
	plain, err := DecodeBlock(b.Key, blob)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", store.Hex(b.ID[:]), err)
	}
	if f.cache != "" {
		if err := f.save(b.ID, plain); err != nil {
			return nil, err
		}
	}
	return plain, nil
}

func (f *fetcher) save(id [HashSize]byte, plain []byte) error {
	path := f.cachePath(id)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("block cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("block cache: %w", err)
	}
	_, werr := tmp.Write(plain)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("block cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("block cache: %w", err)
	}
	return nil
}
