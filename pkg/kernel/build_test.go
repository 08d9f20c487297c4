package kernel

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// debianSource is the apt package linux-source-6.1: a real kernel tarball
// whose top folder (linux-source-6.1/) is not linux-<version>/.
const debianSource = "/usr/src/linux-source-6.1.tar.xz"

// testFragment is added to tinyconfig. E1000E cannot survive: tinyconfig
// has no networking, so olddefconfig must report it dropped.
var testFragment = []string{
	"CONFIG_64BIT=y",
	"CONFIG_MODULES=y",
	"CONFIG_PCI=y",
	"CONFIG_VIRTIO_MENU=y",
	"CONFIG_VIRTIO_PCI=m",
	"CONFIG_E1000E=m",
}

// TestConfigsOnDebianSource runs olddefconfig (CheckConfig) on Debian's 6.1
// source: the production config must lose nothing, and tinyconfig plus
// testFragment must report CONFIG_E1000E dropped.
//
// Compiling and booting a kernel is internal/e2e's job: its shared offline
// build compiles the offline profile's kernel and embeds the initramfs,
// TestOfflineKernel checks the module tree against modprobe and the
// embedded copy against its archive, and the boot tests boot it. CI
// compiles one kernel, not two.
//
// Set ZOSBUILDER_KERNEL_TEST_DIR to keep the kernel tree between runs.
func TestConfigsOnDebianSource(t *testing.T) {
	testutil.Slow(t)
	testutil.RequireFile(t, debianSource)
	for _, tool := range []string{"make", "gcc", "flex", "bison", "xz", "tar"} {
		testutil.RequireTool(t, tool)
	}
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
	t.Run("an option without its dependencies is reported dropped", func(t *testing.T) {
		dropped, err := CheckConfig(ctx, Options{Dir: work, ConfigPath: testConfig(t, ctx, work, tree), Jobs: 2})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(dropped, func(d Dropped) bool { return d.Symbol == "CONFIG_E1000E" }) {
			t.Errorf("dropped = %v, want CONFIG_E1000E among them", dropped)
		}
		if slices.ContainsFunc(dropped, func(d Dropped) bool { return d.Symbol == "CONFIG_VIRTIO_PCI" }) {
			t.Errorf("dropped = %v: CONFIG_VIRTIO_PCI has its dependencies", dropped)
		}
	})
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
