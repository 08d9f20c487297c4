package initramfs_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
)

// epoch is the SOURCE_DATE_EPOCH of the tests (2023-11-14 22:13:20 UTC).
var epoch = func() *int64 { v := int64(1700000000); return &v }()

// file describes one path of a test tree.
type file struct {
	name string
	mode os.FileMode // permissions; ignored for links
	data string      // content; for a symlink its target
	link string      // hard link to this earlier name
	sym  bool
	dir  bool
}

// rootfs is a small tree with what Check requires and every kind of entry
// Pack handles: nested and empty directories, executables, a setuid file, a
// hard link, absolute and relative symlinks and a file large enough to
// lead the report.
func rootfs() []file {
	return []file{
		{name: "init", mode: 0o755, data: "#!/bin/sh\nexec /sbin/zinit init\n"},
		{name: "bin", dir: true, mode: 0o755},
		{name: "bin/busybox", mode: 0o755, data: "\x7fELF not really busybox\n"},
		{name: "bin/sh", sym: true, data: "busybox"},
		{name: "bin/su", mode: 0o4755, data: "setuid\n"},
		{name: "sbin", dir: true, mode: 0o755},
		{name: "sbin/zinit", mode: 0o755, data: "\x7fELF not really zinit\n"},
		{name: "sbin/init", sym: true, data: "/sbin/zinit"},
		{name: "etc", dir: true, mode: 0o755},
		{name: "etc/hostname", mode: 0o644, data: "zos\n"},
		{name: "etc/hosts", mode: 0o644, data: "127.0.0.1 localhost\n"},
		{name: "etc/hosts.link", link: "etc/hosts"},
		{name: "etc/zinit", dir: true, mode: 0o755},
		{name: "etc/zinit/udevd.yaml", mode: 0o644, data: "exec: udevd\n"},
		{name: "lib", dir: true, mode: 0o755},
		{name: "lib/big.so", mode: 0o755, data: strings.Repeat("0123456789abcdef", 4096)},
		{name: "lib-extra", dir: true, mode: 0o755},
		{name: "lib-extra/x", mode: 0o644, data: "x\n"},
		{name: "var", dir: true, mode: 0o755},
		{name: "var/empty", dir: true, mode: 0o700},
	}
}

// makeTree writes files under a new directory and returns it.
func makeTree(t *testing.T, files []file) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	testutil.Must(t, os.Mkdir(root, 0o755))
	testutil.Must(t, os.Chmod(root, 0o755)) // independent of the umask
	for _, f := range files {
		p := filepath.Join(root, f.name)
		switch {
		case f.dir:
			testutil.Must(t, os.Mkdir(p, f.mode))
			testutil.Must(t, os.Chmod(p, f.mode))
		case f.sym:
			testutil.Must(t, os.Symlink(f.data, p))
		case f.link != "":
			testutil.Must(t, os.Link(filepath.Join(root, f.link), p))
		default:
			testutil.Must(t, os.WriteFile(p, []byte(f.data), f.mode))
			testutil.Must(t, os.Chmod(p, f.mode)) // setuid and the umask
		}
		if os.Getuid() == 0 {
			// Files of another owner, so owner 0:0 in the archive is
			// Pack's doing (an unprivileged run owns them itself).
			testutil.Must(t, os.Lchown(p, 1000, 1000))
			if !f.sym && f.link == "" {
				testutil.Must(t, os.Chmod(p, f.mode)) // chown clears setuid
			}
		}
	}
	return root
}

// pack packs root into a new file and returns its path and stats.
func pack(t *testing.T, root string, opt initramfs.Options) (string, initramfs.Stats) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "initramfs.cpio.xz")
	st, err := initramfs.PackStats(context.Background(), root, out, opt)
	if err != nil {
		t.Fatalf("Pack %s: %v", root, err)
	}
	return out, st
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	testutil.Must(t, err)
	return b
}
