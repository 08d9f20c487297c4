package initramfs_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
)

// The boot tests run the real /init (config/init) under Debian's kernel and
// busybox in QEMU through runit.sh, with a test-fixture zinit.
const (
	runit    = "../../runit.sh"
	initFile = "../../config/init"
	marker   = "FAKEZINIT-DONE" // printed by internal/fixtures/fakezinit
	// vmTimeout only keeps a broken boot from hanging the test run; a TCG
	// boot takes about 10 s.
	vmTimeout = "300"
)

// debianKernel returns Debian's installed kernel image and its version.
func debianKernel(t *testing.T) (string, string) {
	t.Helper()
	matches, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(matches) == 0 {
		testutil.Missing(t, "no /boot/vmlinuz-* (apt-get install linux-image-amd64)")
	}
	k := matches[len(matches)-1]
	return k, strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
}

// bootRoot builds the fixture rootfs: Debian's static busybox with an
// applet symlink for each command, the real config/init, units in
// /etc/zinit, one real kernel module with its modules.dep and a stage-1
// list naming it and a module that does not exist. With zinit the
// fakezinit fixture is built as /sbin/zinit.
func bootRoot(t *testing.T, kver string, zinit bool) string {
	t.Helper()
	requireTools(t, "go", "depmod", "qemu-system-x86_64")
	testutil.RequireFile(t, "/bin/busybox")
	root := makeTree(t, []file{
		{name: "bin", dir: true, mode: 0o755},
		{name: "sbin", dir: true, mode: 0o755},
		{name: "etc", dir: true, mode: 0o755},
		{name: "etc/zinit", dir: true, mode: 0o755},
		{name: "etc/zinit/hello.yaml", mode: 0o644, data: "exec: echo hello\noneshot: true\n"},
		{name: "etc/zinit/network.yaml", mode: 0o644, data: "exec: udhcpc -f\nafter:\n  - hello\n"},
		{name: "etc/zero-os", dir: true, mode: 0o755},
		{name: "etc/zero-os/modules-stage1.list", mode: 0o644, data: "# boot-critical\ndummy\nno_such_module_zos"}, // no final newline
	})
	testutil.Must(t, os.WriteFile(filepath.Join(root, "bin/busybox"), readFile(t, "/bin/busybox"), 0o755))
	for _, applet := range strings.Fields(testutil.Run(t, "", nil, "/bin/busybox", "--list")) {
		if applet != "busybox" && !strings.ContainsRune(applet, '/') {
			testutil.Must(t, os.Symlink("busybox", filepath.Join(root, "bin", applet)))
		}
	}
	testutil.Must(t, os.WriteFile(filepath.Join(root, "init"), readFile(t, initFile), 0o755))

	ko := filepath.Join("/lib/modules", kver, "kernel/drivers/net/dummy.ko")
	testutil.RequireFile(t, ko)
	modDir := filepath.Join(root, "lib/modules", kver, "kernel/drivers/net")
	testutil.Must(t, os.MkdirAll(modDir, 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(modDir, "dummy.ko"), readFile(t, ko), 0o644))
	testutil.Run(t, "", nil, "depmod", "-b", root, kver)

	if zinit {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "sbin/zinit"), "../../internal/fixtures/fakezinit")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build fakezinit: %v\n%s", err, out)
		}
	}
	return root
}

// boot boots kernel (with initrd, unless empty) with runit.sh; it returns
// the exit code and the console log.
func boot(t *testing.T, kernel, initrd string, args ...string) (int, string) {
	t.Helper()
	args = append([]string{"--kernel", kernel, "--memory", "1G", "--net", "none", "--timeout", vmTimeout}, args...)
	if initrd != "" {
		args = append(args, "--initrd", initrd)
	}
	return testutil.Runit(t, runit, 10*time.Minute, args...)
}

// TestBootDebianKernel is the end-to-end test: the fixture rootfs packed
// by Pack boots under Debian's kernel, /init mounts the kernel filesystems,
// loads the stage-1 list (logging the module that does not exist), and
// execs /sbin/zinit as PID 1, whose report the console must show.
func TestBootDebianKernel(t *testing.T) {
	testutil.Slow(t)
	kernel, kver := debianKernel(t)
	root := bootRoot(t, kver, true)
	initrd := filepath.Join(t.TempDir(), "initramfs.cpio.xz")
	st, err := initramfs.PackStats(context.Background(), root, initrd, initramfs.Options{SourceDateEpoch: epoch})
	testutil.Must(t, err)
	t.Logf("initramfs: %+v", st)

	code, console := boot(t, kernel, initrd, "--expect", marker)
	if code != 0 {
		t.Fatalf("runit.sh exited %d, want 0 (marker %q seen)\n%s", code, marker, console)
	}
	for _, want := range []string{
		`fakezinit: test fixture standing in for zinit: pid 1 args \["init"\]`,
		`fakezinit: 2 units in /etc/zinit`,
		`fakezinit: unit hello exec="echo hello" after=\[\] oneshot=true`,
		`fakezinit: unit network exec="udhcpc -f" after=\[hello\] oneshot=false`,
		`init: moving / from the initramfs rootfs to a tmpfs`,
		`init: / is a tmpfs of \d+ KiB \(zos.rootsize=50%\) holding \d+ KiB; MemAvailable: \d+ KiB before the move, \d+ KiB during it, \d+ KiB after`,
		`fakezinit: mount / tmpfs`, // containers can pivot_root out of it
		`fakezinit: mount /proc proc`,
		`fakezinit: mount /sys sysfs`,
		`fakezinit: mount /dev devtmpfs`,
		`fakezinit: mount /dev/pts devpts`,
		`fakezinit: mount /run tmpfs`,
		`fakezinit: dir /home ok`,
		`fakezinit: dir /tmp ok`,
		`init: modprobe no_such_module_zos failed`,
		`init: stage-1 modules: 1 of 2 loaded`,
		`fakezinit: module dummy loaded`,
		`fakezinit: module no_such_module_zos not loaded`,
		`init: coldplug with mdev`,
		`fakezinit: /dev/console 5:1`,
	} {
		if !regexp.MustCompile(want).MatchString(console) {
			t.Errorf("console lacks %s\n%s", want, console)
		}
	}
	if strings.Contains(console, "Kernel panic") {
		t.Error("the console shows a kernel panic")
	}
	// busybox ash reports a failing redirection or command in /init as
	// "/init: line N: ...": /init must handle its own failures.
	if m := regexp.MustCompile(`/init: line \d+: .*`).FindString(console); m != "" {
		t.Errorf("/init hit a shell error: %s", m)
	}
}

// TestBootRootfsWhenTmpfsTooSmall: when the tree does not fit the tmpfs
// zos.rootsize= allows, /init says so and boots from the rootfs.
func TestBootRootfsWhenTmpfsTooSmall(t *testing.T) {
	testutil.Slow(t)
	kernel, kver := debianKernel(t)
	root := bootRoot(t, kver, true)
	initrd := filepath.Join(t.TempDir(), "initramfs.cpio.xz")
	testutil.Must(t, initramfs.Pack(context.Background(), root, initrd, initramfs.Options{}))
	code, console := boot(t, kernel, initrd, "--append", "zos.rootsize=1M", "--expect", marker)
	want := regexp.MustCompile(`init: the image \(\d+ KiB\) does not fit a tmpfs of size 1M \(\d+ KiB\): staying on the initramfs rootfs`)
	if code != 0 || !want.MatchString(console) || !strings.Contains(console, "fakezinit: mount / rootfs") {
		t.Fatalf("runit.sh exited %d; want 0, the message and / still the rootfs\n%s", code, console)
	}
}

// TestBootWithoutZinit: /init must say that zinit is missing and keep a
// shell on the console instead of letting the kernel panic.
func TestBootWithoutZinit(t *testing.T) {
	testutil.Slow(t)
	kernel, kver := debianKernel(t)
	root := bootRoot(t, kver, false)
	initrd := filepath.Join(t.TempDir(), "initramfs.cpio.xz")
	testutil.Must(t, initramfs.Pack(context.Background(), root, initrd, initramfs.Options{}))
	code, console := boot(t, kernel, initrd, "--expect", "dropping to a rescue shell")
	if code != 0 || !strings.Contains(console, "init: /sbin/zinit not found or not executable") {
		t.Fatalf("runit.sh exited %d; want 0 and the missing-zinit message\n%s", code, console)
	}
}

// TestRunitExitCodes checks runit.sh's contract on the cases a boot test
// relies on: a kernel panic, a timeout, and bad usage.
func TestRunitExitCodes(t *testing.T) {
	testutil.Slow(t)
	requireTools(t, "qemu-system-x86_64")
	kernel, _ := debianKernel(t)
	t.Run("panic", func(t *testing.T) {
		// No initramfs and no root disk: "VFS: Unable to mount root fs".
		code, console := boot(t, kernel, "", "--expect", "never printed")
		if code != 1 || !strings.Contains(console, "Kernel panic") {
			t.Errorf("exit %d, want 1 after a kernel panic\n%s", code, console)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		if code, _ := boot(t, kernel, "", "--expect", "never printed", "--timeout", "1"); code != 124 {
			t.Errorf("exit %d, want 124 on timeout", code)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"bad cpus", []string{"--kernel", kernel, "--cpus", "0"}, 2},
		{"bad disk", []string{"--kernel", kernel, "--disk", "10G"}, 2},
		{"unknown option", []string{"--kernel", kernel, "--frobnicate", "1"}, 2},
		{"missing kernel", []string{"--kernel", "/nonexistent/vmlinuz"}, 3},
		{"missing initrd", []string{"--kernel", kernel, "--initrd", "/nonexistent/initrd"}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := exec.Command(runit, tt.args...).Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tt.code {
				t.Errorf("runit.sh %q: %v, want exit %d", tt.args, err, tt.code)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		out := testutil.Run(t, "", nil, runit, "--help")
		for _, opt := range []string{"--hypervisor", "--kernel", "--initrd", "--memory", "--cpus", "--disk", "--net", "--append", "--timeout", "--expect", "--log", "--accel", "Exit codes"} {
			if !strings.Contains(out, opt) {
				t.Errorf("--help does not document %s", opt)
			}
		}
	})
}
