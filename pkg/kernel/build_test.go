package kernel

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/elfbin"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
	"github.com/threefoldtech/zosbuilder/pkg/modules"
)

// debianSource is the apt package linux-source-6.1: a real kernel tarball
// whose top folder (linux-source-6.1/) is not linux-<version>/.
const debianSource = "/usr/src/linux-source-6.1.tar.xz"

// testFragment turns tinyconfig into a kernel that boots under QEMU with
// an embedded initramfs and builds two modules (virtio_pci pulls virtio,
// virtio_ring and the virtio_pci_*_dev libraries). E1000E cannot survive:
// tinyconfig has no networking, so olddefconfig must report it dropped.
var testFragment = []string{
	"CONFIG_64BIT=y",
	`CONFIG_LOCALVERSION="-zostest"`,
	"CONFIG_PRINTK=y",
	"CONFIG_TTY=y",
	"CONFIG_SERIAL_8250=y",
	"CONFIG_SERIAL_8250_CONSOLE=y",
	"CONFIG_CMDLINE_BOOL=y",
	`CONFIG_CMDLINE="console=ttyS0 panic=-1"`,
	"CONFIG_BINFMT_ELF=y",
	"CONFIG_BINFMT_SCRIPT=y",
	"CONFIG_DEVTMPFS=y",
	"CONFIG_DEVTMPFS_MOUNT=y",
	"CONFIG_PROC_FS=y",
	"CONFIG_SYSFS=y",
	"CONFIG_BLK_DEV_INITRD=y",
	"CONFIG_RD_XZ=y",
	"CONFIG_ACPI=y",
	"CONFIG_EFI=y",
	"CONFIG_EFI_STUB=y",
	"CONFIG_MODULES=y",
	"CONFIG_MODULE_UNLOAD=y",
	"CONFIG_PCI=y",
	"CONFIG_VIRTIO_MENU=y",
	"CONFIG_VIRTIO_PCI=m",
	"CONFIG_E1000E=m",
}

// TestBuildKernelBootsEmbeddedInitramfs builds Debian's 6.1 source with a
// small config: modules into modules-root (resolved like modprobe), then a
// bzImage embedding an initramfs packed by pkg/initramfs, which must carry
// that initramfs's build id and boot to its /init under QEMU without
// --initrd. A new initramfs must make the old kernel fail verification
// and the rebuilt one boot the new /init.
//
// Set ZOSBUILDER_KERNEL_TEST_DIR to keep the kernel tree between runs.
func TestBuildKernelBootsEmbeddedInitramfs(t *testing.T) {
	testutil.Slow(t)
	testutil.RequireFile(t, debianSource)
	for _, tool := range []string{"make", "gcc", "flex", "bison", "bc", "xz", "tar", "depmod", "modprobe", "qemu-system-x86_64"} {
		testutil.RequireTool(t, tool)
	}
	busybox := staticBusybox(t)
	runit := filepath.Join(repoRoot(t), "runit.sh")
	testutil.RequireFile(t, runit)

	ctx := context.Background()
	work := os.Getenv("ZOSBUILDER_KERNEL_TEST_DIR")
	if work == "" {
		work = t.TempDir()
	}
	version := tarballVersion(t, debianSource)
	start := time.Now()
	tree, err := Source(ctx, work, SourceOptions{Version: version, Tarball: debianSource})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("source %s ready in %s", version, time.Since(start).Round(time.Second))

	t.Run("production config survives olddefconfig", func(t *testing.T) {
		dropped, err := CheckConfig(ctx, Options{Dir: work, ConfigPath: filepath.Join(repoRoot(t), "config", "kernel.config"), Jobs: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(dropped) > 0 {
			t.Errorf("olddefconfig on %s drops %s", version, joinDropped(dropped))
		}
	})

	cfgPath := testConfig(t, ctx, work, tree)
	full, err := FullVersion(version, cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Dir: work, FullVersion: full, ConfigPath: cfgPath, Jobs: 2, SourceDateEpoch: 1700000000}

	start = time.Now()
	root, dropped, err := BuildModules(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("modules built in %s", time.Since(start).Round(time.Second))
	if !slices.ContainsFunc(dropped, func(d Dropped) bool { return d.Symbol == "CONFIG_E1000E" }) {
		t.Errorf("dropped = %v, want CONFIG_E1000E among them", dropped)
	}
	checkModules(t, root, full)

	dist := filepath.Join(work, "dist")
	archive := filepath.Join(dist, "initramfs.cpio.xz")
	vmlinuz := filepath.Join(dist, "vmlinuz.efi")
	id1, marker1 := packFixture(t, busybox, archive)
	start = time.Now()
	if _, err := BuildImage(ctx, opt, ImageOptions{Initramfs: archive, BuildID: id1, Output: vmlinuz}); err != nil {
		t.Fatal(err)
	}
	t.Logf("bzImage built in %s", time.Since(start).Round(time.Second))
	if got, err := VerifyEmbedded(ctx, vmlinuz, archive, id1); err != nil || got != id1 {
		t.Fatalf("VerifyEmbedded = %q, %v", got, err)
	}
	// What image:sbom and image:diff read: the archive, from its first byte.
	packed, _ := os.ReadFile(archive)
	if embedded, err := EmbeddedInitramfs(ctx, vmlinuz); err != nil || !bytes.HasPrefix(embedded, packed) {
		t.Errorf("EmbeddedInitramfs: %v (found %d bytes, want a copy of the %d of %s)", err, len(embedded), len(packed), archive)
	}
	boot(t, runit, vmlinuz, marker1)

	// A new initramfs: the kernel just built no longer carries it.
	id2, marker2 := packFixture(t, busybox, archive)
	_, err = VerifyEmbedded(ctx, vmlinuz, archive, id2)
	if !errors.Is(err, ErrStaleInitramfs) || !strings.Contains(err.Error(), id1) {
		t.Fatalf("old kernel, new initramfs: err = %v, want ErrStaleInitramfs naming %s", err, id1)
	}
	start = time.Now()
	if _, err := BuildImage(ctx, opt, ImageOptions{Initramfs: archive, BuildID: id2, Output: vmlinuz}); err != nil {
		t.Fatal(err)
	}
	t.Logf("bzImage rebuilt for a new initramfs in %s", time.Since(start).Round(time.Second))
	boot(t, runit, vmlinuz, marker2)
	if _, err := BuildImage(ctx, opt, ImageOptions{Initramfs: archive, BuildID: id1, Output: vmlinuz}); !errors.Is(err, ErrStaleInitramfs) {
		t.Fatalf("wrong expected build id: err = %v, want ErrStaleInitramfs", err)
	}
}

// checkModules resolves the built tree like modprobe does and copies the
// closure into an image root.
func checkModules(t *testing.T, root, full string) {
	t.Helper()
	ix, err := modules.Load(root, full, modules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Source != modules.SourceModulesDep {
		t.Fatalf("modules-root has no usable modules.dep (source %s)", ix.Source)
	}
	seq, err := ix.Depends("virtio-pci")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range seq {
		names = append(names, e.Name)
	}
	for _, want := range []string{"virtio", "virtio_ring", "virtio_pci"} {
		if !slices.Contains(names, want) {
			t.Errorf("virtio-pci closure %v lacks %s", names, want)
		}
	}
	out, err := exec.Command("modprobe", "-d", root, "-S", full, "-C", t.TempDir(), "--show-depends", "virtio_pci").Output()
	if err != nil {
		t.Fatalf("modprobe: %v", err)
	}
	var ref []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			ref = append(ref, modules.NameFromPath(f[1]))
		}
	}
	if !slices.Equal(names, ref) {
		t.Errorf("Depends = %v, modprobe = %v", names, ref)
	}
	for _, link := range []string{"build", "source"} {
		if _, err := os.Lstat(filepath.Join(root, "lib/modules", full, link)); !os.IsNotExist(err) {
			t.Errorf("modules-root keeps the %s symlink into the build tree", link)
		}
	}
	plan, err := modules.NewPlan(ix, []string{"virtio_pci"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	img := t.TempDir()
	if err := modules.Copy(context.Background(), plan, modules.CopyOptions{SrcRoot: root, DstRoot: img}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(img, modules.KernelVersionPath)); string(b) != full+"\n" {
		t.Errorf("kernel-version = %q, want %s", b, full)
	}
}

// testConfig writes tinyconfig plus testFragment to work/test-kernel.config.
func testConfig(t *testing.T, ctx context.Context, work, tree string) string {
	t.Helper()
	// In a scratch objtree: the source tree itself must stay clean for
	// out-of-tree builds.
	scratch := filepath.Join(work, "tinyconfig")
	if _, err := runLogged(ctx, tree, Layout{work}.Logs(), "tinyconfig", nil, "make", "ARCH=x86_64", "O="+scratch, "tinyconfig"); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfig(filepath.Join(scratch, ".config"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range testFragment {
		sym, val, _ := strings.Cut(l, "=")
		cfg.Set(sym, val)
	}
	p := filepath.Join(work, "test-kernel.config")
	if err := os.WriteFile(p, cfg.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// packFixture packs a busybox root whose /init prints a fresh marker, with
// a fresh build id, and returns both.
func packFixture(t *testing.T, busybox, out string) (id, marker string) {
	t.Helper()
	id, marker = "test-"+randomHex(t), "ZOS-MARKER-"+randomHex(t)
	root := t.TempDir()
	copyExec(t, busybox, filepath.Join(root, "bin/busybox"))
	testutil.WriteFile(t, filepath.Join(root, BuildIDPath), id+"\n", 0o644)
	testutil.WriteFile(t, filepath.Join(root, "init"), "#!/bin/busybox sh\n/bin/busybox echo "+marker+"\n/bin/busybox reboot -f\n", 0o644)
	if err := os.Chmod(filepath.Join(root, "init"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := initramfs.Pack(context.Background(), root, out, initramfs.Options{}); err != nil {
		t.Fatal(err)
	}
	return id, marker
}

func boot(t *testing.T, runit, kernel, marker string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "bash", runit, "--kernel", kernel, "--expect", marker, "--timeout", "300",
		"--accel", "tcg", "--net", "none", "--memory", "256M", "--cpus", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("runit.sh did not see %s: %v\n%s", marker, err, fsutil.LastLines(out, 40))
	}
	t.Logf("booted to the embedded /init in %s", time.Since(start).Round(time.Second))
}

func staticBusybox(t *testing.T) string {
	t.Helper()
	const p = "/bin/busybox"
	testutil.RequireFile(t, p)
	info, err := elfbin.Read(p)
	if err != nil || !info.Static() {
		testutil.Missing(t, "%s is not a static binary (apt-get install busybox-static): %v", p, err)
	}
	return p
}

// tarballVersion reads the kernel version from the Makefile in a tarball.
func tarballVersion(t *testing.T, tarball string) string {
	t.Helper()
	first, err := exec.Command("sh", "-c", "tar -tJf \"$1\" | head -n 1", "sh", tarball).Output()
	if err != nil {
		t.Fatalf("list %s: %v", tarball, err)
	}
	top := strings.TrimSuffix(strings.TrimSpace(string(first)), "/")
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xJf", tarball, "-C", dir, "--occurrence=1", top+"/Makefile").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	v, err := TreeVersion(filepath.Join(dir, top))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func repoRoot(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func copyExec(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
