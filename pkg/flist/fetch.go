package flist

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/blake2b"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// fetcher returns the plain content of blocks from a store, through an
// optional on-disk cache of decrypted blocks in rfs's cache layout
// (<cache>/<hex[0:2]>/<hex[2:4]>/<hex(id)>).
type fetcher struct {
	store store.Store
	cache string
	// bound, when set, keeps cache under a size limit.
	bound *cacheBound
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

func (f *fetcher) cachePath(id [HashSize]byte) string { return blockCachePath(f.cache, id) }

// block returns the plain content of b, verified: a blob must hash to its
// id and its content to its key, and a cached block to its key (a cached
// block that does not is removed and fetched again).
func (f *fetcher) block(ctx context.Context, b Block) ([]byte, error) {
	if f.cache != "" {
		plain, err := os.ReadFile(f.cachePath(b.ID))
		if err == nil && len(plain) > 0 {
			if blake2b.Sum256(plain) == b.Key {
				f.bound.touch(b.ID, len(plain))
				return plain, nil
			}
			_ = os.Remove(f.cachePath(b.ID))
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("block cache: %w", err)
		}
	}
	blob, err := f.store.Get(ctx, b.ID[:])
	if err != nil {
		return nil, err
	}
	plain, err := decodeChecked(b, blob)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", store.Hex(b.ID[:]), err)
	}
	if f.cache != "" {
		if err := f.save(b.ID, plain); err != nil {
			return nil, err
		}
		f.bound.touch(b.ID, len(plain))
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
