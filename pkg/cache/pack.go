package cache

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/threefoldtech/zosbuilder/pkg/archive"
)

// Part is one file or folder tree of an artifact.
type Part struct {
	// Name is the part's top-level name in the archive (one segment).
	Name string
	// Path is where the part lives on this machine; a restore replaces it.
	Path string
	// Skip, when set, leaves an entry of a folder part out of the archive
	// (rel is slash-separated, relative to Path). A skipped folder is left
	// out with everything below it.
	Skip func(rel string, d fs.DirEntry) bool
	// Relocate, when set, makes files that record an absolute path
	// portable to a machine where that path is another.
	Relocate *Relocation
}

// Relocation rewrites an absolute path recorded in the files of a part: it
// is replaced by a placeholder when packing, and the placeholder by this
// machine's path when restoring. Modification times are kept.
type Relocation struct {
	// Root is the absolute path the files record, on this machine.
	Root string
	// Files selects the files to rewrite (rel as for Skip). They are read
	// whole, so select small text files.
	Files func(rel string) bool
}

// placeholder stands for Relocation.Root inside an artifact.
const placeholder = "@@ZOSBUILDER_RELOCATED_ROOT@@"

// maxRelocated bounds a file that is rewritten in memory.
const maxRelocated = 64 << 20

// packed is what pack wrote.
type packed struct {
	sha256   string
	size     int64 // compressed
	unpacked int64 // bytes of file content
}

// pack writes the parts as one zstd-compressed tar (PAX, so modification
// times keep their nanoseconds: make compares them) to w. Entries are in
// lexical order, owned by 0:0; special files are left out.
func pack(ctx context.Context, w io.Writer, parts []Part) (packed, error) {
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h)}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return packed{}, err
	}
	tw := tar.NewWriter(zw)
	var unpacked int64
	for _, p := range parts {
		n, err := packPart(ctx, tw, p)
		if err != nil {
			zw.Close()
			return packed{}, fmt.Errorf("pack %s: %w", p.Path, err)
		}
		unpacked += n
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		return packed{}, fmt.Errorf("pack: %w", err)
	}
	return packed{sha256: hex.EncodeToString(h.Sum(nil)), size: cw.n, unpacked: unpacked}, nil
}

func packPart(ctx context.Context, tw *tar.Writer, p Part) (int64, error) {
	var total int64
	err := filepath.WalkDir(p.Path, func(full string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(p.Path, full)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		name := p.Name
		if rel != "." {
			if p.Skip != nil && p.Skip(rel, d) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			name += "/" + rel
		}
		var reloc *Relocation
		if p.Relocate != nil && d.Type().IsRegular() && p.Relocate.Files(rel) {
			reloc = p.Relocate
		}
		n, err := packEntry(tw, full, name, d, reloc)
		total += n
		return err
	})
	return total, err
}

// packEntry writes one entry and returns the bytes of content it wrote.
// A file to relocate is written with its root replaced by the placeholder.
func packEntry(tw *tar.Writer, full, name string, d fs.DirEntry, reloc *Relocation) (int64, error) {
	fi, err := d.Info()
	if err != nil {
		return 0, err
	}
	link := ""
	switch {
	case fi.Mode().IsRegular(), fi.IsDir():
	case fi.Mode()&fs.ModeSymlink != 0:
		if link, err = os.Readlink(full); err != nil {
			return 0, err
		}
	default:
		return 0, nil // sockets, fifos, devices: nothing a build restores
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return 0, err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.AccessTime, hdr.ChangeTime = fi.ModTime(), fi.ModTime()
	hdr.Format = tar.FormatPAX
	if reloc != nil {
		b, err := readSmall(full)
		if err != nil {
			return 0, err
		}
		b = bytes.ReplaceAll(b, []byte(reloc.Root), []byte(placeholder))
		hdr.Size = int64(len(b))
		if err := tw.WriteHeader(hdr); err != nil {
			return 0, err
		}
		n, err := tw.Write(b)
		return int64(n), err
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, nil
	}
	f, err := os.Open(full)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.Copy(tw, f)
	if err == nil && n != fi.Size() {
		err = fmt.Errorf("%s changed while being packed", full)
	}
	return n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// unpack extracts a verified artifact file into tree (a fresh folder next
// to the parts) and moves each part into place, replacing what was there.
// The archive must hold exactly the parts asked for. Extraction follows
// pkg/archive's rules (nothing outside tree, no writing through symlinks).
func unpack(ctx context.Context, file, tree string, parts []Part) error {
	if err := archive.ExtractFile(ctx, file, tree, archive.Options{}); err != nil {
		return err
	}
	ents, err := os.ReadDir(tree)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, p := range parts {
		want[p.Name] = true
	}
	for _, e := range ents {
		if !want[e.Name()] {
			return fmt.Errorf("artifact holds %q, which is none of its parts", e.Name())
		}
		delete(want, e.Name())
	}
	if len(want) > 0 {
		return fmt.Errorf("artifact lacks parts %v", keys(want))
	}
	for _, p := range parts {
		if p.Relocate != nil {
			if err := relocate(filepath.Join(tree, p.Name), p.Relocate); err != nil {
				return err
			}
		}
	}
	for _, p := range parts {
		if err := os.MkdirAll(filepath.Dir(p.Path), 0o755); err != nil {
			return err
		}
		if err := replace(filepath.Join(tree, p.Name), p.Path); err != nil {
			return fmt.Errorf("restore %s: %w", p.Path, err)
		}
	}
	return nil
}

// relocate puts this machine's root back into the files of a restored part
// (in its staging folder), keeping their modification times.
func relocate(dir string, r *Relocation) error {
	return filepath.WalkDir(dir, func(full string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, full)
		if err != nil || !r.Files(filepath.ToSlash(rel)) {
			return err
		}
		b, err := readSmall(full)
		if err != nil || !bytes.Contains(b, []byte(placeholder)) {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		b = bytes.ReplaceAll(b, []byte(placeholder), []byte(r.Root))
		if err := os.WriteFile(full, b, fi.Mode().Perm()); err != nil {
			return fmt.Errorf("relocate %s: %w", rel, err)
		}
		return os.Chtimes(full, fi.ModTime(), fi.ModTime())
	})
}

func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRelocated+1))
	if err == nil && len(b) > maxRelocated {
		err = fmt.Errorf("%s: larger than %d bytes, too large to relocate", p, maxRelocated)
	}
	return b, err
}

// stagingDir makes a fresh folder next to path (creating path's parent).
// The first time in a process it removes what an interrupted earlier
// restore or publish left in that parent; later calls must not, since the
// component builds of one stage restore side by side.
func (c *Cache) stagingDir(path, prefix string) (string, error) {
	parent := filepath.Dir(path)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	c.mu.Lock()
	if !c.swept[parent] {
		if err := removeLeftovers(parent); err != nil {
			c.mu.Unlock()
			return "", err
		}
		c.swept[parent] = true
	}
	c.mu.Unlock()
	return os.MkdirTemp(parent, prefix)
}

func removeLeftovers(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		for _, p := range []string{".cache-restore-", ".cache-publish-", ".cache-old-"} {
			if strings.HasPrefix(e.Name(), p) {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("remove leftover %s: %w", e.Name(), err)
				}
			}
		}
	}
	return nil
}

// replace renames src to dst. An existing folder at dst is moved aside
// first and removed after, so dst is never half old, half new.
func replace(src, dst string) error {
	old := ""
	if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
		old = filepath.Join(filepath.Dir(dst), ".cache-old-"+filepath.Base(dst))
		if err := os.RemoveAll(old); err != nil {
			return err
		}
		if err := os.Rename(dst, old); err != nil {
			return err
		}
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
