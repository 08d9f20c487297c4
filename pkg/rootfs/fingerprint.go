package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Fingerprint returns a stable SHA-256 (hex) of the tree at root: every
// path in sorted order with its type and permission bits, symlink targets,
// and file contents. Owners and times are left out: the archive writer
// normalises them. exclude lists absolute in-root paths (/etc/motd) to
// leave out.
func Fingerprint(root string, exclude ...string) (string, error) {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := inRoot(root, path)
		if slices.Contains(exclude, rel) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%s\x00%o\x00", rel, info.Mode().Type(), info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			h.Write([]byte(target))
		case info.Mode().IsRegular():
			sum, err := fileHash(path, buf)
			if err != nil {
				return err
			}
			h.Write(sum)
		}
		h.Write([]byte{'\n'})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", root, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileHash(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
