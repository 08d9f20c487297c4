package firmware

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/threefoldtech/zosbuilder/pkg/flist"
)

// FlistTree reads the paths of a packed firmware flist (its manifest only:
// no blob is fetched), to report against what nodes will really mount.
func FlistTree(ctx context.Context, fl string) (Tree, error) {
	r, err := flist.Open(fl)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	t := &flistTree{nodes: map[string]flistNode{}}
	err = r.Walk(ctx, func(p string, in *flist.Inode) error {
		if p == "/" {
			return nil
		}
		t.nodes[strings.TrimPrefix(p, "/")] = flistNode{typ: in.Type(), target: string(in.Data)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("firmware flist %s: %w", fl, err)
	}
	for p := range t.nodes {
		t.paths = append(t.paths, p)
	}
	sort.Strings(t.paths)
	return t, nil
}

type flistNode struct {
	typ    flist.FileType
	target string // a symlink's
}

type flistTree struct {
	nodes map[string]flistNode
	paths []string // sorted, for wildcard names
}

// firmwareMount is where the firmware flist is mounted on a node: absolute
// symlink targets under it point into the flist.
const firmwareMount = "/lib/firmware/"

func (t *flistTree) Find(fw string) (string, bool) {
	if strings.Contains(fw, "..") {
		return "", false
	}
	for _, ext := range []string{"", ".zst", ".xz"} {
		name := strings.TrimPrefix(fw, "/") + ext
		if !strings.ContainsAny(fw, "*?[") {
			if t.regular(name) {
				return name, true
			}
			continue
		}
		for _, p := range t.paths {
			if ok, _ := path.Match(name, p); ok && t.regular(p) {
				return p, true
			}
		}
	}
	return "", false
}

// regular reports whether p resolves, symlinks followed component by
// component inside the tree, to a regular file.
func (t *flistTree) regular(p string) bool {
	parts := strings.Split(p, "/")
	cur, hops := "", 0
	for i := 0; i < len(parts); i++ {
		if parts[i] == "" || parts[i] == "." {
			continue
		}
		next := path.Join(cur, parts[i])
		n, ok := t.nodes[next]
		if !ok {
			return false
		}
		if n.typ != flist.TypeSymlink {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return false
		}
		target := n.target
		if strings.HasPrefix(target, "/") {
			rest, ok := strings.CutPrefix(target, firmwareMount)
			if !ok {
				return false // outside the flist
			}
			target = rest
		} else {
			target = path.Join(cur, target)
		}
		if target == ".." || strings.HasPrefix(target, "../") {
			return false
		}
		parts = append(strings.Split(target, "/"), parts[i+1:]...)
		cur, i = "", -1
	}
	n, ok := t.nodes[cur]
	return ok && n.typ == flist.TypeRegular
}

// PackedFlist returns the firmware flist of dir to report against: dir/name
// when it exists, else the most recently packed firmware-*.fl there (a
// date-tagged flist of an earlier day); "" when there is none.
func PackedFlist(dir, name string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		return filepath.Join(dir, name), nil
	}
	ms, err := filepath.Glob(filepath.Join(dir, "firmware-*.fl"))
	if err != nil {
		return "", err
	}
	newest, when := "", time.Time{}
	for _, m := range ms {
		if st, err := os.Stat(m); err == nil && st.ModTime().After(when) {
			newest, when = m, st.ModTime()
		}
	}
	return newest, nil
}
