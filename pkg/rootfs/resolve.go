package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrLinkLoop is returned when resolving a path meets more symlinks than the
// kernel would follow.
var ErrLinkLoop = errors.New("too many levels of symbolic links")

// maxLinks is the kernel's limit on symlinks followed in one lookup.
const maxLinks = 40

// Resolve returns the host path that p names inside the rootfs at root, as
// the kernel would see it after chroot(root): absolute symlink targets start
// again at root and ".." never climbs above it, so nothing on the host is
// ever consulted. p may be absolute or relative to root. A missing path
// gives an error wrapping fs.ErrNotExist.
func Resolve(root, p string) (string, error) {
	var done []string
	todo := components(p)
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		host := filepath.Join(root, filepath.Join(done...), c)
		st, err := os.Lstat(host)
		if err != nil {
			return "", fmt.Errorf("resolve %s in %s: %w", p, root, err)
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolve %s in %s: %w", p, root, ErrLinkLoop)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", fmt.Errorf("resolve %s in %s: %w", p, root, err)
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		todo = append(components(target), todo...)
	}
	return filepath.Join(root, filepath.Join(done...)), nil
}

func components(p string) []string {
	return strings.Split(filepath.ToSlash(p), "/")
}

// inRoot turns a host path below root back into the absolute path seen
// inside the rootfs.
func inRoot(root, host string) string {
	rel, err := filepath.Rel(root, host)
	if err != nil || rel == "." {
		return "/"
	}
	return "/" + filepath.ToSlash(rel)
}
