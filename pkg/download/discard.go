package download

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Discard removes a file that File returned, and what the cache keeps
// beside it, once the caller keeps what it needed from it elsewhere (an
// extracted package): the next File call for its URL downloads it again.
// A path outside the cache directory is refused.
func (f *Fetcher) Discard(path string) error {
	rel, err := filepath.Rel(f.opt.CacheDir, path)
	if err != nil || f.opt.CacheDir == "" || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("discard download %s: not a file of the cache %s", path, f.opt.CacheDir)
	}
	for _, p := range []string{path, validatorsPath(path)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("discard download: %w", err)
		}
	}
	return nil
}
