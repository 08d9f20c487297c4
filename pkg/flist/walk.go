package flist

import (
	"context"
	"fmt"
	"strings"
)

// WalkFunc is called for every inode in walk order with its absolute path
// inside the flist ("/" for the root).
type WalkFunc func(path string, in *Inode) error

// RootIno is the root inode: rfs's walk and its FUSE layer both start at
// inode 1.
const RootIno = 1

// Walk visits the flist in rfs's order: a LIFO list of directories; popping
// a directory visits it, then its non-directory children at once in inode
// order, while its subdirectories go to the back of the list, so sibling
// directories come out in reverse inode order. `rfs flist tree` and
// `inspect` print in this order.
//
// Names that could escape a directory ("", ".", "..", or containing '/' or
// NUL), two entries with the same path and directory cycles fail with
// ErrCorrupt, so callers can join paths safely and meet each path once.
func (r *Reader) Walk(ctx context.Context, fn WalkFunc) error {
	root, err := r.Inode(ctx, RootIno)
	if err != nil {
		return err
	}
	if root.Type() != TypeDir {
		return fmt.Errorf("flist %s: root inode 1 is a %s, not a directory: %w", r.path, root.Type(), ErrCorrupt)
	}
	type item struct {
		path string
		in   Inode
	}
	seen := map[int64]bool{root.Ino: true}
	list := []item{{"/", root}}
	for len(list) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		it := list[len(list)-1]
		list = list[:len(list)-1]
		if err := fn(it.path, &it.in); err != nil {
			return err
		}
		children, err := r.Children(ctx, it.in.Ino)
		if err != nil {
			return err
		}
		if err := r.checkNames(it.path, children); err != nil {
			return err
		}
		for i := range children {
			child := &children[i]
			p := joinPath(it.path, child.Name)
			if child.Type() == TypeDir {
				if seen[child.Ino] {
					return fmt.Errorf("flist %s: directory %s (inode %d) reached twice: %w", r.path, p, child.Ino, ErrCorrupt)
				}
				seen[child.Ino] = true
				list = append(list, item{p, *child})
				continue
			}
			if err := fn(p, child); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkNames checks the entries of directory dir: every name is a safe
// path element and no two are equal. Two entries with one path would let a
// reader replace what it just created (a file by a symlink to anywhere).
func (r *Reader) checkNames(dir string, children []Inode) error {
	seen := make(map[string]int64, len(children))
	for i := range children {
		in := &children[i]
		if !ValidName(in.Name) {
			return fmt.Errorf("flist %s: inode %d has unsafe name %q: %w", r.path, in.Ino, in.Name, ErrCorrupt)
		}
		if first, dup := seen[in.Name]; dup {
			return fmt.Errorf("flist %s: inodes %d and %d are both %q: %w", r.path, first, in.Ino, joinPath(dir, in.Name), ErrCorrupt)
		}
		seen[in.Name] = in.Ino
	}
	return nil
}

// ValidName reports whether name is a safe single path element.
func ValidName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}
