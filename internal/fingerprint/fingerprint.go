// Package fingerprint hashes a file tree by what a build reads of it: every
// entry's relative path, type and permission bits (setuid, setgid and
// sticky included), and the content of files or the target of symlinks.
// Owners and times are left out: they do not change what the build makes
// (the archive writer sets 0:0 and SOURCE_DATE_EPOCH). The rootfs
// fingerprints its tree with it for the build id; the stage engine's input
// folders are fingerprinted in the same format.
package fingerprint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Options tune Tree.
type Options struct {
	// Skip leaves out the entry at rel (slash-separated, relative to the
	// root) and, for a folder, everything in it.
	Skip func(rel string, d fs.DirEntry) bool
	// File returns the content hash of a regular file; nil is File. The
	// stage engine passes one that remembers hashes by size, mtime and
	// inode.
	File func(path string, info fs.FileInfo) (string, error)
}

// Tree returns the SHA-256 (hex) of the tree at root (a folder), its
// entries in lexical order, the root itself left out. One line per entry:
//
//	D rel mode
//	F rel mode content-hash
//	L rel target
//	S rel mode-string   (FIFOs, devices, sockets)
//
// where mode is the octal permission bits (04000 setuid, 02000 setgid,
// 01000 sticky).
func Tree(root string, opt Options) (string, error) {
	hashFile := opt.File
	if hashFile == nil {
		hashFile = func(path string, _ fs.FileInfo) (string, error) { return File(path) }
	}
	h := sha256.New()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == root {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if opt.Skip != nil && opt.Skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch mode := info.Mode(); {
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "L %s %s\n", rel, target)
		case mode.IsDir():
			fmt.Fprintf(h, "D %s %o\n", rel, unixPerm(mode))
		case mode.IsRegular():
			sum, err := hashFile(path, info)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "F %s %o %s\n", rel, unixPerm(mode), sum)
		default:
			fmt.Fprintf(h, "S %s %v\n", rel, mode)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// unixPerm is the permission bits as chmod takes them.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

var buffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// File returns the SHA-256 (hex) of the content of the file at path.
func File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, *buf); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
