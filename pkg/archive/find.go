package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/threefoldtech/zosbuilder/pkg/compression"
)

// ErrNotFound is returned by Find when no entry matches.
var ErrNotFound = errors.New("no matching entry")

// Find returns the name and content of the first regular file in the tar
// archive at path (plain or compressed) for which match returns true, reading
// no further than that entry: a kernel tarball's Makefile is found without
// decompressing the other 1.3 GB. Content beyond max bytes is an error.
func Find(ctx context.Context, path string, match func(name string) bool, max int64) (string, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	stream, err := compression.NewReader(ctx, f, compression.Options{XZProgram: true})
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer stream.Abort()
	tr := tar.NewReader(stream)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", nil, fmt.Errorf("read %s: %w", path, ErrNotFound)
		}
		if err != nil {
			return "", nil, fmt.Errorf("read %s: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg || !match(h.Name) {
			continue
		}
		if h.Size > max {
			return "", nil, fmt.Errorf("read %s: %s is %d bytes, more than %d", path, h.Name, h.Size, max)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return "", nil, fmt.Errorf("read %s from %s: %w", h.Name, path, err)
		}
		return h.Name, b, nil
	}
}
