package rootfs

import (
	"fmt"
	"io/fs"
	"slices"

	"github.com/threefoldtech/zosbuilder/internal/fingerprint"
)

// Fingerprint returns a stable SHA-256 (hex) of the tree at root
// (fingerprint.Tree: paths, types, permission bits, symlink targets, file
// contents; not owners or times, which the archive writer normalises).
// exclude lists absolute in-root paths (/etc/motd) to leave out.
func Fingerprint(root string, exclude ...string) (string, error) {
	fp, err := fingerprint.Tree(root, fingerprint.Options{
		Skip: func(rel string, _ fs.DirEntry) bool { return slices.Contains(exclude, "/"+rel) },
	})
	if err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", root, err)
	}
	return fp, nil
}
