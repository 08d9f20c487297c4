package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/pkg/cpio"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
)

// TestOfflineIncrementalEqualsClean proves the stage engine's promise on
// the real offline build: after each kind of change a maintainer makes, an
// incremental `mage build` ends with the image a clean build of the same
// config makes. The stages edit INSTALL_DIR in place, so a rerun that adds
// but never takes away would leave stale files in the image.
//
// On the shared build it first adds what the changes then take away (a
// component, a zinit unit, a stage-2 module, a firmware entry from
// FIRMWARE_DIR) and builds; then, at once, removes each of them, turns
// ZEROOS_BRANDING and ENABLE_STRIP off, deletes dist/flists by hand, and
// builds incrementally. (packages.list cannot change here: the fixture
// mirror has no apk.static, so the offline profile installs no package;
// internal/pipeline's TestChangesThatRebuildTheImageFromScratch covers it.)
//
// Then the same tree is made clean and built again: every stage's marker
// and output is removed (INSTALL_DIR, DIST_DIR, the component binaries,
// the module plan), except kernel_modules', whose inputs (kernel.config,
// the kernel tarball, the KERNEL_* keys) none of the changes touch: the
// modules it built are what a clean build would build, and rebuilding them
// would be CI's second kernel compile. The component checkouts stay as
// compiler caches, like the kernel tree: components_build reruns and
// writes every binary again. So the second build is a clean build of
// everything the changes can reach. The two archives must hold the same
// entries with the same type, mode, owner, size, content and link target
// (times are not compared).
//
// The edits are undone when the test ends and the shared build is rebuilt
// incrementally, as Edit does.
func TestOfflineIncrementalEqualsClean(t *testing.T) {
	b := SharedOffline(t)
	const (
		profile  = "config/profiles/offline/"
		unit     = profile + "zinit/extra.yaml"
		firmware = "work/offline/firmware/extra/extra.bin"
		dist     = "work/offline/dist/"
	)
	orig := map[string][]byte{}
	for _, f := range []string{"sources.conf", "modules.conf", "firmware.conf"} {
		data, err := os.ReadFile(b.Path(profile + f))
		if err != nil {
			t.Fatal(err)
		}
		orig[f] = data
	}

	// What the changes will take away.
	b.Append(t, profile+"sources.conf", "local  rfs2  .  -  go:./cmd/rfs  /usr/bin/rfs2\n")
	b.Edit(t, unit, []byte("exec: /bin/true\noneshot: true\n"))
	b.Append(t, profile+"modules.conf", "stage2:dummy\n")
	// Edit's restore removes the file; its folder must go too, or the
	// firmware flist (FIRMWARE_DIR on top) would carry an empty folder.
	t.Cleanup(func() { os.Remove(filepath.Dir(b.Path(firmware))) })
	b.Edit(t, firmware, []byte("firmware of the entry the test removes\n"))
	b.Append(t, profile+"firmware.conf", "extra\n")
	timedBuild(t, b, "with the extras")
	added := readImage(t, b.Path(dist+"initramfs.cpio.xz"))
	for _, p := range []string{"usr/bin/rfs2", "etc/zinit/extra.yaml", "lib/firmware/extra/extra.bin"} {
		if _, ok := added[p]; !ok {
			t.Fatalf("the build with the extras has no /%s: the test would prove nothing", p)
		}
	}

	// Every kind of change at once, then the incremental build.
	for f, data := range orig {
		b.Edit(t, profile+f, data)
	}
	b.Remove(t, unit)
	b.Append(t, profile+"build.conf", "\nZEROOS_BRANDING=\"false\"\nENABLE_STRIP=\"false\"\n")
	if err := os.RemoveAll(b.Path(dist + "flists")); err != nil {
		t.Fatal(err)
	}
	timedBuild(t, b, "incremental")
	incremental := readImage(t, b.Path(dist+"initramfs.cpio.xz"))

	// The clean build of the same config.
	for _, s := range []string{"alpine_extract", "components_build"} {
		if out, err := b.Mage(t, offlineEnv, "reset", s); err != nil {
			t.Fatalf("mage reset %s: %v\n%s", s, err, out)
		}
	}
	for _, p := range []string{"work/offline/initramfs", "work/offline/dist", "work/offline/components/.out",
		"work/offline/components/.stripped", "work/offline/.build/modules-plan.txt"} {
		if err := os.RemoveAll(b.Path(p)); err != nil {
			t.Fatal(err)
		}
	}
	log := timedBuild(t, b, "clean (but for the kernel modules)")
	if !strings.Contains(log, "[alpine_extract] running") {
		t.Fatalf("the clean build did not start from the minirootfs:\n%s", log)
	}
	clean := readImage(t, b.Path(dist+"initramfs.cpio.xz"))

	if diff := diffImages(incremental, clean); len(diff) > 0 {
		t.Errorf("the incremental image differs from the clean one in %d entries:\n%s", len(diff), strings.Join(diff, "\n"))
	}
	for _, p := range []string{"usr/bin/rfs2", "etc/zinit/extra.yaml", "lib/firmware/extra"} {
		if _, ok := clean[p]; ok {
			t.Errorf("the clean image still has /%s", p)
		}
	}
	t.Logf("images compared: %d entries", len(clean))
}

// timedBuild runs `PROFILE=offline mage build` in b, fails the test when it
// fails or rebuilds the kernel modules, and returns its output.
func timedBuild(t *testing.T, b *OfflineBuild, what string) string {
	t.Helper()
	start := time.Now()
	out, err := b.Mage(t, offlineEnv, "build")
	if err != nil {
		t.Fatalf("mage build (%s): %v\n%s", what, err, out)
	}
	if strings.Contains(out, "[kernel_modules] running") {
		t.Errorf("mage build (%s) rebuilt the kernel modules, which nothing changed", what)
	}
	t.Logf("mage build (%s): %s", what, time.Since(start).Round(time.Second))
	return out
}

// readImage returns every entry of the archive at path, by name, as a line
// holding everything but its times: type and mode, owner, size, the sha256
// of its content, link target and device numbers.
func readImage(t *testing.T, path string) map[string]string {
	t.Helper()
	entries := map[string]string{}
	err := initramfs.Walk(t.Context(), path, func(h *cpio.Header, body io.Reader) error {
		sum := sha256.New()
		if _, err := io.Copy(sum, body); err != nil {
			return err
		}
		entries[h.Name] = fmt.Sprintf("mode %o uid %d gid %d size %d sha256 %s link %q rdev %d:%d",
			h.Mode, h.UID, h.GID, h.Size, hex.EncodeToString(sum.Sum(nil))[:16], h.Linkname, h.RdevMajor, h.RdevMinor)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return entries
}

// diffImages lists the entries that differ between a and b, by name.
func diffImages(a, b map[string]string) []string {
	var names []string
	for n := range a {
		names = append(names, n)
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var diff []string
	for _, n := range names {
		x, inA := a[n]
		y, inB := b[n]
		switch {
		case !inB:
			diff = append(diff, "only in the incremental image: "+n)
		case !inA:
			diff = append(diff, "only in the clean image: "+n)
		case x != y:
			diff = append(diff, fmt.Sprintf("%s: incremental %s, clean %s", n, x, y))
		}
	}
	return diff
}
