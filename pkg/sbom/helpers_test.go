package sbom

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

const testKernel = "6.1.0-Zero-OS"

var testEpoch = time.Unix(1700000000, 0).UTC()

// image is a small image tree with everything a real one has: apk
// packages, a component, modules and firmware (from an apk package and
// from FIRMWARE_DIR), the project's config, generated files and the two
// flists packed from their own trees.
type image struct {
	dir      string // holds everything below
	root     string // the image tree (INSTALL_DIR)
	modules  string // the modules tree the modules flist is packed from
	firmware string // FIRMWARE_DIR, packed into the firmware flist
	dist     string
	route    []store.Route // written into both flists when set
}

func q1(body string) string {
	sum := sha1.Sum([]byte(body))
	return "Q1" + base64.StdEncoding.EncodeToString(sum[:])
}

// apkDB is an installed database in apk's format for packages given as
// name -> files (with their content).
func apkDB(pkgs []testPkg) string {
	var b strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&b, "C:%s\nP:%s\nV:%s\nA:x86_64\nS:1\nI:1\nT:%s package\nU:https://example.org/%s\nL:%s\no:%s\nm:Maintainer <m@example.org>\nt:1700000000\nc:abc\n",
			q1(p.name+p.version), p.name, p.version, p.name, p.name, p.license, p.origin)
		dir := ""
		for _, f := range p.files {
			if d := filepath.Dir(f); d != dir {
				dir = d
				fmt.Fprintf(&b, "F:%s\n", d)
			}
			fmt.Fprintf(&b, "R:%s\nZ:%s\n", filepath.Base(f), q1(f))
		}
		b.WriteString("\n")
	}
	return b.String()
}

type testPkg struct {
	name, version, license, origin string
	files                          []string
}

func basePackages() []testPkg {
	return []testPkg{
		{"busybox", "1.36.1-r29", "GPL-2.0-only", "busybox", []string{"bin/busybox", "etc/securetty"}},
		{"alpine-release", "3.22.0-r0", "MIT", "alpine-base", []string{"etc/alpine-release"}},
		{"libfoo", "1.0-r0", "custom:foo", "foo", []string{"usr/lib/libfoo.so.1"}},
		{"linux-firmware-rtl_nic", "20240610-r0", "GPL-2.0-or-later AND MIT", "linux-firmware", []string{"lib/firmware/rtl_nic/rtl8168h-2.fw"}},
	}
}

func newImage(t testing.TB) *image {
	t.Helper()
	dir := t.TempDir()
	im := &image{dir: dir, root: filepath.Join(dir, "initramfs"), modules: filepath.Join(dir, "kernel/modules-root/lib/modules", testKernel),
		firmware: filepath.Join(dir, "firmware"), dist: filepath.Join(dir, "dist")}
	files := map[string]string{
		"bin/busybox":                          "busybox binary",
		"etc/securetty":                        "console\n",
		"etc/alpine-release":                   "3.22.0\n",
		"usr/lib/libfoo.so.1":                  "libfoo",
		"lib/firmware/rtl_nic/rtl8168h-2.fw":   "realtek firmware",
		"lib/firmware/fixture/fixture-nic.bin": "fixture firmware blob\n",
		"sbin/zinit":                           "zinit binary",
		"init":                                 "#!/bin/sh\nexec /sbin/zinit init\n",
		"etc/zinit/udevd.yaml":                 "exec: udevd\n",
		"etc/zinit/init/udev.sh":               "#!/bin/sh\n",
		"etc/zero-os-build-id":                 "20231114T221320Z-gabc-f0123\n",
		"etc/issue":                            "Zero-OS\n",
		"etc/motd":                             "Welcome\n",
		"etc/hostname":                         "zero-os\n",
		"etc/resolv.conf":                      "nameserver 1.1.1.1\n",
		"etc/apk/repositories":                 "https://mirror/v3.22/main\n",
		"etc/apk/world":                        "busybox\n",
		"etc/zero-os/modules-stage1.list":      "virtio_net\n",
		"etc/zero-os/kernel-version":           testKernel + "\n",
		"lib/modules/" + testKernel + "/kernel/drivers/net/virtio_net.ko": "virtio_net module",
		"lib/modules/" + testKernel + "/modules.dep":                      "kernel/drivers/net/virtio_net.ko:\n",
		"lib/apk/db/installed":                                            apkDB(basePackages()),
	}
	for p, body := range files {
		testutil.WriteFile(t, filepath.Join(im.root, p), body, 0o644)
	}
	for p, body := range map[string]string{
		"kernel/drivers/net/virtio_net.ko": "virtio_net module",
		"kernel/drivers/net/dummy.ko":      "dummy module",
		"kernel/fs/big.ko":                 strings.Repeat("0123456789abcdef", 70000), // three flist blocks
		"modules.dep":                      "kernel/drivers/net/virtio_net.ko:\n",
	} {
		testutil.WriteFile(t, filepath.Join(im.modules, p), body, 0o644)
	}
	testutil.WriteFile(t, filepath.Join(im.firmware, "fixture/fixture-nic.bin"), "fixture firmware blob\n", 0o644)
	testutil.WriteFile(t, filepath.Join(im.firmware, "other/extra.bin"), "firmware only in the flist\n", 0o644)
	testutil.WriteFile(t, filepath.Join(dir, "config/kernel.config"), "CONFIG_LOCALVERSION=\"-Zero-OS\"\n", 0o644)
	if err := os.Symlink("/bin/busybox", filepath.Join(im.root, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	im.packFlists(t)
	return im
}

// packFlists packs both flists into dist/flists and copies them into the
// image's /etc/rfs, as rfs_flists does.
func (im *image) packFlists(t testing.TB) {
	t.Helper()
	for src, name := range map[string]string{im.modules: "modules-" + testKernel + ".fl", im.firmware: "firmware-latest.fl"} {
		fl := filepath.Join(im.dist, "flists", name)
		_, err := flist.Pack(context.Background(), src, fl, flist.PackOptions{
			Store: store.NewDir(filepath.Join(im.dist, "flists/store")), RouteOverride: im.route})
		if err != nil {
			t.Fatal(err)
		}
		if err := fsutil.CopyFile(fl, filepath.Join(im.root, "etc/rfs", name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (im *image) options() Options {
	return Options{
		Root: im.root, Created: testEpoch,
		KernelVersion: "6.1.0", KernelFullVersion: testKernel, KernelConfig: filepath.Join(im.dir, "config/kernel.config"),
		Components: []Component{{Name: "zinit", Type: "git", Source: "https://ci:tok3n-h15@git.example.org/threefoldtech/zinit.git",
			Version: "v0.2.25", Revision: "0123456789abcdef0123456789abcdef01234567", Recipe: "cargo-musl", InstallPath: "/sbin/zinit"}},
		FirmwareDir: im.firmware, FirmwareEntries: []string{"fixture", "rtl_nic"},
		Flists: []FlistSource{
			{Path: filepath.Join(im.root, "etc/rfs/modules-"+testKernel+".fl"), Kind: FlistModules,
				MountPoint: "lib/modules/" + testKernel, Source: im.modules},
			{Path: filepath.Join(im.root, "etc/rfs/firmware-latest.fl"), Kind: FlistFirmware,
				MountPoint: "lib/firmware", Source: im.firmware},
		},
		Jobs: 2,
	}
}

func (im *image) generate(t testing.TB) *Inventory {
	t.Helper()
	inv, err := Generate(context.Background(), im.options())
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// build writes the SBOMs and packs the archive, as initramfs_create does;
// it returns the archive.
func (im *image) build(t testing.TB) (string, *Inventory) {
	t.Helper()
	inv := im.generate(t)
	if _, err := WriteFiles(inv, filepath.Join(im.dist, "sbom.spdx.json"), im.root); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(im.dist, "initramfs.cpio.xz")
	packOnly(t, im.root, archive)
	return archive, inv
}

// packOnly packs root into archive as initramfs_create does.
func packOnly(t testing.TB, root, archive string) {
	t.Helper()
	epoch := testEpoch.Unix()
	if err := initramfs.Pack(context.Background(), root, archive, initramfs.Options{
		Compression: initramfs.CompressionGo, SourceDateEpoch: &epoch}); err != nil {
		t.Fatal(err)
	}
}

// fakeKernel wraps an initramfs archive the way a bzImage embeds it: a
// boot header whose payload (gzip here) holds kernel bytes, the archive,
// and more kernel bytes.
func fakeKernel(t testing.TB, archive, out string) {
	t.Helper()
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	var vmlinux bytes.Buffer
	vmlinux.WriteString("\x7fELF kernel text \xfd7zXZ\x00 not a stream ")
	vmlinux.Write(data)
	vmlinux.WriteString(strings.Repeat("kernel data ", 100))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(vmlinux.Bytes())
	zw.Close()
	img := make([]byte, 1024, 1024+gz.Len())
	img[0x1f1] = 1 // setup sectors: the payload area starts at 1024
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(img[0x248:], 0)
	binary.LittleEndian.PutUint32(img[0x24c:], uint32(gz.Len()))
	img = append(img, gz.Bytes()...)
	if err := os.WriteFile(out, img, 0o644); err != nil {
		t.Fatal(err)
	}
}
