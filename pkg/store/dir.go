package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
)

// minBlob is the smallest blob the rfs codec can produce: a one-byte snappy
// header plus the 16-byte GCM tag. A shorter file in a dir store is the
// leftover of a crash, not a blob, and Exists does not count it.
const minBlob = 17

// Dir is a store in a local directory. It writes <root>/<hex[0:2]>/<hex> (the
// layout of rfs since 2024) and reads that, then the flat <root>/<hex> layout
// of rfs v2.0.x.
type Dir struct {
	root string
	url  string
}

func openDir(rawURL string, opt Options) (*Dir, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", Redact(rawURL), ErrInvalidURL)
	}
	if u.Host != "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("store %s: dir:// needs an absolute path (dir:///abs/path): %w",
			Redact(rawURL), ErrInvalidURL)
	}
	if opt.Policy != nil {
		if err := opt.Policy.checkDir(u.Path); err != nil {
			return nil, fmt.Errorf("store %s: %w", Redact(rawURL), err)
		}
	}
	return NewDir(u.Path), nil
}

// NewDir returns the dir store rooted at root (an absolute path). The
// directory is created on the first Set.
func NewDir(root string) *Dir {
	root = filepath.Clean(root)
	return &Dir{root: root, url: "dir://" + root}
}

// Root is the store's directory.
func (d *Dir) Root() string { return d.root }

func (d *Dir) paths(id []byte) (sharded, flat string) {
	name := Hex(id)
	return filepath.Join(d.root, name[:2], name), filepath.Join(d.root, name)
}

// Get implements Store.
func (d *Dir) Get(_ context.Context, id []byte) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	sharded, flat := d.paths(id)
	for _, p := range []string{sharded, flat} {
		b, err := readFileBlob(p)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("dir store %s: read blob %s: %w", d.root, Hex(id), err)
		}
	}
	return nil, fmt.Errorf("dir store %s: blob %s: %w", d.root, Hex(id), ErrNotFound)
}

func readFileBlob(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return readBlob(f, st.Size())
}

// Exists implements Store.
func (d *Dir) Exists(_ context.Context, id []byte) (bool, error) {
	if err := checkID(id); err != nil {
		return false, err
	}
	sharded, flat := d.paths(id)
	for _, p := range []string{sharded, flat} {
		fi, err := os.Stat(p)
		if err == nil {
			if fi.Mode().IsRegular() && fi.Size() >= minBlob {
				return true, nil
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("dir store: stat blob: %w", err)
		}
	}
	return false, nil
}

// Set implements Store. The blob is written to a temporary file in the
// target directory and renamed, so readers never see a partial blob.
func (d *Dir) Set(_ context.Context, id, blob []byte) error {
	if err := checkID(id); err != nil {
		return err
	}
	sharded, _ := d.paths(id)
	dir := filepath.Dir(sharded)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dir store: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("dir store: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(blob)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("dir store: write blob %s: %w", Hex(id), err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("dir store: %w", err)
	}
	if err := os.Rename(tmp, sharded); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("dir store: %w", err)
	}
	return nil
}

// Routes implements Store: dir://<root>, as rfs writes it.
func (d *Dir) Routes() []Route { return []Route{{Start: 0, End: 255, URL: d.url}} }
