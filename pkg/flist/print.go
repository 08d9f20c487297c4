package flist

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Counts summarizes an flist the way `rfs flist inspect` does: Files and
// Bytes count regular files only, Dirs includes the root.
type Counts struct {
	Files, Dirs, Symlinks, Others int
	Bytes                         uint64
}

func (c *Counts) add(in *Inode) {
	switch in.Type() {
	case TypeDir:
		c.Dirs++
	case TypeRegular:
		c.Files++
		c.Bytes += in.Size
	case TypeSymlink:
		c.Symlinks++
	default:
		c.Others++
	}
}

// Count walks the flist and counts its inodes by type.
func (r *Reader) Count(ctx context.Context) (Counts, error) {
	var c Counts
	err := r.Walk(ctx, func(_ string, in *Inode) error {
		c.add(in)
		return nil
	})
	return c, err
}

// Tree prints the flist at fl exactly as `rfs flist tree` does.
func Tree(w io.Writer, fl string) error {
	return withReader(fl, func(r *Reader) error { return r.Tree(context.Background(), w) })
}

// Inspect prints the flist at fl exactly as `rfs flist inspect` does, except
// that the GID line shows the gid (rfs prints the uid there).
func Inspect(w io.Writer, fl string) error {
	return withReader(fl, func(r *Reader) error { return r.Inspect(context.Background(), w) })
}

func withReader(fl string, fn func(*Reader) error) error {
	r, err := Open(fl)
	if err != nil {
		return err
	}
	defer r.Close()
	return fn(r)
}

// Tree prints one line per inode in walk order: two spaces per level, an
// icon (📁 dir, 📄 regular file, 🔗 symlink, ❓ anything else) and the name.
func (r *Reader) Tree(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	err := r.Walk(ctx, func(p string, in *Inode) error {
		depth, name := 0, "/"
		if p != "/" {
			depth, name = strings.Count(p, "/"), path.Base(p)
		}
		icon := "❓"
		switch in.Type() {
		case TypeDir:
			icon = "📁"
		case TypeRegular:
			icon = "📄"
		case TypeSymlink:
			icon = "🔗"
		}
		_, err := fmt.Fprintf(bw, "%s%s %s\n", strings.Repeat("  ", depth), icon, Printable(name))
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// Inspect prints every inode's metadata in walk order, then a summary.
func (r *Reader) Inspect(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	var c Counts
	err := r.Walk(ctx, func(p string, in *Inode) error {
		c.add(in)
		fmt.Fprintf(bw, "Path: %s\n", Printable(p))
		fmt.Fprintf(bw, "  Type: %s\n", in.Type())
		fmt.Fprintf(bw, "  Inode: %d\n", in.Ino)
		fmt.Fprintf(bw, "  Name: %s\n", Printable(in.Name))
		fmt.Fprintf(bw, "  Size: %d bytes\n", in.Size)
		fmt.Fprintf(bw, "  UID: %d\n", in.UID)
		fmt.Fprintf(bw, "  GID: %d\n", in.GID)
		fmt.Fprintf(bw, "  Mode: 0%o\n", in.Mode)
		fmt.Fprintf(bw, "  Permissions: 0%o\n", in.Perm())
		fmt.Fprintf(bw, "  Device: %d\n", in.Rdev)
		fmt.Fprintf(bw, "  Created: %d\n", in.Ctime)
		fmt.Fprintf(bw, "  Modified: %d\n", in.Mtime)
		if in.Data != nil {
			if in.Type() == TypeSymlink {
				fmt.Fprintf(bw, "  Link Target: %s\n", Printable(string(in.Data)))
			} else {
				fmt.Fprintf(bw, "  Extra Data: %d bytes\n", len(in.Data))
			}
		}
		_, err := fmt.Fprintf(bw, "  ---\n")
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(bw, "Flist Inspection: %s\n", Printable(r.path))
	fmt.Fprintf(bw, "==================\n")
	fmt.Fprintf(bw, "Files: %d\n", c.Files)
	fmt.Fprintf(bw, "Directories: %d\n", c.Dirs)
	fmt.Fprintf(bw, "Symlinks: %d\n", c.Symlinks)
	fmt.Fprintf(bw, "Total size: %d bytes\n", c.Bytes)
	return bw.Flush()
}

// Printable returns s as rfs prints it when every character is printable
// UTF-8 (spaces and letters of any script included), and Go-quoted
// otherwise ("\x1b[2J", "bad\xff"), so that a crafted name cannot move the
// cursor, clear the screen or set the title of the terminal reading it.
func Printable(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
