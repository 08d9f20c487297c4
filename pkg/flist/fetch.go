package flist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/crypto/blake2b"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// fetcher is the one path by which every reader (unpack, mount, verify)
// gets block content: from a store, through an optional on-disk cache of
// decrypted blocks in rfs's cache layout
// (<cache>/<hex[0:2]>/<hex[2:4]>/<hex(id)>). Nothing it returns is
// unverified: a blob must hash to the block id and its content to the
// block key, and a cache entry must hash to the key or it is dropped and
// fetched again.
type fetcher struct {
	store store.Store
	cache string
	// bound, when set, keeps cache under a size limit.
	bound *cacheBound
}

// cachePath is where the plain content of block id is cached.
func (f *fetcher) cachePath(id [HashSize]byte) string { return blockCachePath(f.cache, id) }

// block returns the verified plain content of b.
func (f *fetcher) block(ctx context.Context, b Block) ([]byte, error) {
	if f.cache != "" {
		plain, err := f.cached(b)
		if plain != nil || err != nil {
			return plain, err
		}
	}
	plain, err := f.fetch(ctx, b)
	if err != nil {
		return nil, err
	}
	if f.cache != "" {
		if err := f.save(b.ID, plain); err != nil {
			return nil, err
		}
		f.bound.touch(b.ID, len(plain))
	}
	return plain, nil
}

// fetch gets the blob of b from the store and decodes it, checking the id
// and the key.
func (f *fetcher) fetch(ctx context.Context, b Block) ([]byte, error) {
	blob, err := f.store.Get(ctx, b.ID[:])
	if err != nil {
		return nil, err
	}
	plain, err := decodeChecked(b, blob)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", store.Hex(b.ID[:]), err)
	}
	return plain, nil
}

// blockLen is the length block idx of a file of size bytes must have: every
// block is BlockSize long except the last.
func blockLen(size uint64, idx int) int {
	return int(min(size-uint64(idx)*BlockSize, BlockSize))
}

// checkBlockCount fails when a file's block rows do not match its size.
func checkBlockCount(in *Inode, blocks []Block) error {
	if want := blocksFor(in.Size); uint64(len(blocks)) != want {
		return fmt.Errorf("inode %d: %d block rows for %d bytes (want %d): %w", in.Ino, len(blocks), in.Size, want, ErrCorrupt)
	}
	return nil
}

// sizedBlock returns block idx of a file, checking that its length is what
// the file's size allows (blocks are verified content, so a wrong length is
// a corrupt flist, not a corrupt blob).
func (f *fetcher) sizedBlock(ctx context.Context, in *Inode, blocks []Block, idx int) ([]byte, error) {
	plain, err := f.block(ctx, blocks[idx])
	if err != nil {
		return nil, err
	}
	return plain, checkBlockLen(in, idx, plain)
}

// checkBlockLen fails when block idx of a file is not as long as the
// file's size allows.
func checkBlockLen(in *Inode, idx int, plain []byte) error {
	if want := blockLen(in.Size, idx); len(plain) != want {
		return fmt.Errorf("inode %d: block %d holds %d bytes, the size %d needs %d: %w",
			in.Ino, idx, len(plain), in.Size, want, ErrCorrupt)
	}
	return nil
}

// cached returns the cache entry of b when it is intact, nil when there is
// none; an entry that is too long or does not hash to the key is removed.
func (f *fetcher) cached(b Block) ([]byte, error) {
	path := f.cachePath(b.ID)
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("block cache: %w", err)
	}
	plain, err := io.ReadAll(io.LimitReader(fh, BlockSize+1))
	fh.Close()
	if err != nil {
		return nil, fmt.Errorf("block cache: %w", err)
	}
	if len(plain) > 0 && len(plain) <= BlockSize && blake2b.Sum256(plain) == b.Key {
		f.bound.touch(b.ID, len(plain))
		return plain, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("block cache: drop bad entry: %w", err)
	}
	return nil, nil
}

func (f *fetcher) save(id [HashSize]byte, plain []byte) error {
	// Not synced: a torn entry fails its hash check on the next read.
	if err := fsutil.WriteFile(f.cachePath(id), plain, 0o600); err != nil {
		return fmt.Errorf("block cache: %w", err)
	}
	return nil
}
