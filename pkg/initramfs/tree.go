package initramfs

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/cpio"
)

// item is one archive entry: its header and, for a regular file that carries
// data, the file to read it from.
type item struct {
	hdr  cpio.Header
	src  string  // file to copy the body from; "" for no body
	link linkKey // identity of a regular file with several names
}

type linkKey struct{ dev, ino uint64 }

// plan walks srcDir and returns the archive's entries in their final order
// with every header field decided: names, modes, owner 0:0, mtimes, inode
// numbers, link counts, and which name of a hard-linked file carries the
// data. Device nodes from opt replace entries of the same name.
func plan(ctx context.Context, srcDir string, opt Options) ([]*item, error) {
	items, err := walk(ctx, srcDir)
	if err != nil {
		return nil, err
	}
	devices := opt.Devices
	if devices == nil {
		devices = DefaultDevices()
	}
	items, err = addDevices(items, devices, opt)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(items, func(a, b *item) int { return comparePaths(a.hdr.Name, b.hdr.Name) })
	number(items, opt.SourceDateEpoch)
	return items, nil
}

func walk(ctx context.Context, srcDir string) ([]*item, error) {
	// WalkDir does not descend into a root that is a symlink.
	root, err := filepath.EvalSymlinks(srcDir)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("pack %s: not a directory", srcDir)
	}
	var items []*item
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		it, err := fileItem(p, filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		items = append(items, it)
		return nil
	})
	return items, err
}

// fileItem reads what the archive keeps of one file: type, permissions,
// size, symlink target, device number and mtime. Owner, inode and link
// count are decided later for the whole archive.
func fileItem(p, name string) (*item, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("stat %s: no unix stat data", p)
	}
	it := &item{hdr: cpio.Header{Name: name, Mode: cpio.ModeOf(fi.Mode()), MTime: fi.ModTime().Unix()}}
	switch it.hdr.Type() {
	case cpio.TypeReg:
		it.hdr.Size = fi.Size()
		it.src = p
		if st.Nlink > 1 {
			it.link = linkKey{uint64(st.Dev), st.Ino}
		}
		// Open now, not only when writing, so an unreadable file fails
		// before any output is made.
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w", p, err)
		}
		f.Close()
	case cpio.TypeSymlink:
		if it.hdr.Linkname, err = os.Readlink(p); err != nil {
			return nil, fmt.Errorf("pack %s: %w", p, err)
		}
	case cpio.TypeChar, cpio.TypeBlock:
		it.hdr.RdevMajor, it.hdr.RdevMinor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	}
	return it, nil
}

// addDevices puts the device nodes into the list, replacing same-named
// entries, and adds any missing parent directory (/dev in a fresh tree).
func addDevices(items []*item, devices []Device, opt Options) ([]*item, error) {
	byName := make(map[string]int, len(items))
	for i, it := range items {
		byName[it.hdr.Name] = i
	}
	for _, d := range devices {
		name := strings.TrimPrefix(path.Clean("/"+d.Name), "/")
		if name == "" || name != strings.TrimPrefix(d.Name, "/") {
			return nil, fmt.Errorf("device %q: want a clean relative path like dev/console", d.Name)
		}
		hdr := d.header()
		hdr.Name = name
		dev := &item{hdr: hdr}
		if i, ok := byName[name]; ok {
			if t := items[i].hdr.Type(); t != cpio.TypeChar && t != cpio.TypeBlock {
				logging.OrDiscard(opt.Log).Warnf("initramfs: %s in the tree is replaced by a device node %d:%d", name, d.Major, d.Minor)
			}
			items[i] = dev
			continue
		}
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, ok := byName[dir]; ok {
				break
			}
			byName[dir] = len(items)
			items = append(items, &item{hdr: cpio.Header{Name: dir, Mode: cpio.TypeDir | 0o755}})
		}
		byName[name] = len(items)
		items = append(items, dev)
	}
	return items, nil
}

// number fills the fields that must not depend on the build host: inode
// numbers in archive order, owner 0:0, link counts counted inside the
// archive, and the mtime. The first name of a hard-linked file carries its
// data; later names have size 0 and the same inode, which both the kernel
// and GNU cpio turn back into links.
func number(items []*item, epoch *int64) {
	names := make(map[linkKey]uint32)
	for _, it := range items {
		if it.link != (linkKey{}) {
			names[it.link]++
		}
	}
	subdirs := make(map[string]uint32)
	for _, it := range items {
		if it.hdr.Type() == cpio.TypeDir && it.hdr.Name != "." {
			subdirs[path.Dir(it.hdr.Name)]++
		}
	}
	first := make(map[linkKey]uint32)
	for i, it := range items {
		h := &it.hdr
		h.Ino, h.NLink = uint32(i+1), 1
		h.UID, h.GID, h.DevMajor, h.DevMinor = 0, 0, 0, 0
		if epoch != nil {
			h.MTime = *epoch
		} else if h.MTime < 0 {
			h.MTime = 0
		}
		switch {
		case h.Type() == cpio.TypeDir:
			h.NLink = 2 + subdirs[h.Name]
		case it.link != linkKey{}:
			h.NLink = names[it.link]
			if ino, ok := first[it.link]; ok {
				h.Ino, h.Size, it.src = ino, 0, ""
			} else {
				first[it.link] = h.Ino
			}
		}
	}
}

// comparePaths orders paths component by component, so a directory always
// comes right before its contents ("a", "a/b", "a-b"), as the kernel needs:
// it does not create missing parent directories.
func comparePaths(a, b string) int {
	if a == "." || b == "." {
		return boolCmp(b == ".", a == ".")
	}
	return strings.Compare(strings.ReplaceAll(a, "/", "\x00"), strings.ReplaceAll(b, "/", "\x00"))
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
