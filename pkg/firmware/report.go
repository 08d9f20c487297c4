package firmware

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/modules"
)

// Status says where a firmware file a module asks for was found.
type Status string

// Where firmware can be.
const (
	InImage Status = "image"   // RootDir/lib/firmware
	InFlist Status = "flist"   // the firmware flist source, mounted at runtime
	Missing Status = "missing" // nowhere: only matters if the hardware is present
)

// Item is one firmware file one module asks for (modinfo firmware=).
type Item struct {
	Module   string // module path relative to lib/modules/VERSION
	Firmware string // relative to /lib/firmware
	Status   Status
	// Found is the file that satisfied it, relative to its firmware root;
	// it may carry the .zst or .xz suffix the kernel's loader also tries.
	Found string
}

// Report lists the firmware of every module in an image.
type Report struct {
	Items []Item
}

// Count returns how many items have status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, it := range r.Items {
		if it.Status == s {
			n++
		}
	}
	return n
}

// String renders one item a line: "STATUS<TAB>FIRMWARE<TAB>MODULE".
func (r Report) String() string {
	var b strings.Builder
	for _, it := range r.Items {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", it.Status, it.Firmware, it.Module)
	}
	return b.String()
}

// WriteFile writes String() to path through a temporary file.
func (r Report) WriteFile(path string) error {
	if err := fsutil.WriteFile(path, []byte(r.String()), 0o644); err != nil {
		return fmt.Errorf("write firmware report: %w", err)
	}
	return nil
}

// Tree is a firmware tree BuildReport looks files up in besides the image:
// the firmware flist, mounted over /lib/firmware at runtime.
type Tree interface {
	// Find returns the file the kernel's firmware loader would load for
	// fw (relative to /lib/firmware): fw itself, or fw.zst or fw.xz; a
	// name with wildcards matches any file. Symlinks must resolve to a
	// regular file inside the tree.
	Find(fw string) (string, bool)
}

// DirTree is a firmware tree on disk: the directory the firmware flist is
// packed from.
func DirTree(dir string) Tree { return dirTree(dir) }

type dirTree string

func (d dirTree) Find(fw string) (string, bool) {
	f := lookup(string(d), fw)
	return f, f != ""
}

// BuildReport reads the firmware= entries of every module under
// root/lib/modules/version and looks each file up in root/lib/firmware,
// then in flist (the firmware flist or the tree it is packed from; nil for
// none). Missing firmware is reported, never an error: it matters only on
// hardware that needs it.
func BuildReport(root, version string, flist Tree) (Report, error) {
	dir := filepath.Join(root, "lib", "modules", version)
	var mods []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && modules.IsModuleFile(d.Name()) {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			mods = append(mods, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("firmware report: %w", err)
	}
	sort.Strings(mods)
	imageFw := filepath.Join(root, "lib", "firmware")
	var r Report
	for _, m := range mods {
		mi, err := modules.ReadModinfo(filepath.Join(dir, m))
		if err != nil {
			return Report{}, fmt.Errorf("firmware report: %w", err)
		}
		for _, fw := range mi.Firmware() {
			it := Item{Module: m, Firmware: fw, Status: Missing}
			if f := lookup(imageFw, fw); f != "" {
				it.Status, it.Found = InImage, f
			} else if flist != nil {
				if f, ok := flist.Find(fw); ok {
					it.Status, it.Found = InFlist, f
				}
			}
			r.Items = append(r.Items, it)
		}
	}
	return r, nil
}

// lookup finds fw under dir as the kernel's firmware loader would: the
// name itself, or compressed with zstd or xz. A name with wildcards (some
// modules declare patterns) matches any file. Symlinks must resolve inside
// dir.
func lookup(dir, fw string) string {
	if dir == "" || strings.Contains(fw, "..") {
		return ""
	}
	for _, ext := range []string{"", ".zst", ".xz"} {
		name := fw + ext
		if strings.ContainsAny(fw, "*?[") {
			ms, _ := filepath.Glob(filepath.Join(dir, name))
			for _, m := range ms {
				if rel, ok := inside(dir, m); ok {
					return rel
				}
			}
			continue
		}
		if rel, ok := inside(dir, filepath.Join(dir, name)); ok {
			return rel
		}
	}
	return ""
}

// inside returns p relative to dir when p is a regular file whose real
// location (symlinks resolved) is under dir.
func inside(dir, p string) (string, bool) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", false
	}
	base, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", false
	}
	if st, err := os.Stat(real); err != nil || !st.Mode().IsRegular() || !strings.HasPrefix(real, base+string(filepath.Separator)) {
		return "", false
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return "", false
	}
	return filepath.ToSlash(rel), true
}
