package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/fixtures"
	"github.com/threefoldtech/zosbuilder/pkg/firmware"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
)

// The offline profile's image carries these; the boot tests read them back
// through the flists.
const (
	// flistModule is the self-test's default SELFTEST_MODULE.
	flistModule = "kernel/drivers/net/dummy.ko"
	// storeRoute is the offline profile's LOCAL_STORE_ROUTE.
	storeRoute = "http://10.0.2.100/"
)

// selfTestChecks are the checks of the offline self-test unit
// (config/profiles/offline/zinit/init/selftest.sh), in order.
var selfTestChecks = []string{"pid1", "units", "dhcp", "flists", "modprobe", "firmware", "rootfs"}

// TestOfflineProfileBuild: every stage of `mage build` ran for real on the
// offline profile (fixture Alpine mirror, the real zinit built from its git
// bundle and Debian's crates, Debian's kernel source), a second build does
// no work, and the old entry point reruns from a stage to the same bytes.
func TestOfflineProfileBuild(t *testing.T) {
	b := SharedOffline(t)
	status, err := b.Mage(t, offlineEnv, "status")
	if err != nil {
		t.Fatalf("mage status: %v\n%s", err, status)
	}
	for _, stage := range []string{"alpine_extract", "alpine_firmware", "components_build", "components_verify", "kernel_modules",
		"zinit_setup", "modules_copy", "cleanup", "validation", "rfs_flists", "initramfs_create", "initramfs_test", "kernel_build"} {
		if !regexp.MustCompile(`(?m)^` + stage + `\s+done\b`).MatchString(status) {
			t.Errorf("stage %s is not done:\n%s", stage, status)
		}
	}

	// The firmware flist is the fixture mirror's full linux-firmware set
	// (Debian's firmware, verified with the fixture key), FIRMWARE_DIR on top.
	if strings.Contains(b.Log, "[rfs_flists] running") && !strings.Contains(b.Log, "firmware flist: 49 linux-firmware packages (49 fetched") {
		t.Errorf("rfs_flists did not assemble the full firmware set:\n%s", b.Log)
	}
	fwFL := embeddedFlist(t, b, "firmware-")
	tree, err := firmware.FlistTree(t.Context(), fwFL)
	if err != nil {
		t.Fatal(err)
	}
	for _, fw := range []string{"rtl_nic/rtl8168h-2.fw", "i915/kbl_dmc_ver1_04.bin", "fixture/fixture-nic.bin", fixtures.FlistOnlyFirmware} {
		if _, ok := tree.Find(fw); !ok {
			t.Errorf("the firmware flist has no %s", fw)
		}
	}
	report, err := b.Mage(t, offlineEnv, "firmware:report")
	if err != nil || !strings.Contains(report, "in the firmware flist ("+fwFL+")") {
		t.Errorf("firmware:report: %v\n%s", err, report)
	}

	// kernel_build checks the initramfs copy the kernel carries, and
	// initramfs:check reads it out of any kernel image.
	kernel := b.Path("work/offline/dist/vmlinuz.efi")
	if strings.Contains(b.Log, "[kernel_build] running") &&
		!regexp.MustCompile(`\[kernel_build\] .* embeds the initramfs with build id \S+ \(\d+ entries, checked\)`).MatchString(b.Log) {
		t.Errorf("kernel_build did not check the embedded initramfs:\n%s", b.Log)
	}
	if check, err := mageStdout(t, b.Dir, offlineEnv, "initramfs:check", kernel); err != nil || !strings.Contains(check, kernel+" (embedded initramfs): ") {
		t.Errorf("initramfs:check %s: %v\n%s", kernel, err, check)
	}

	// Nothing changed: no stage does any work.
	out, err := b.Mage(t, offlineEnv, "build")
	if err != nil || strings.Contains(out, "] running (") {
		t.Errorf("second build: %v\n%s", err, out)
	}

	// The old entry point reruns from a stage; the same inputs and
	// SOURCE_DATE_EPOCH give a byte-identical archive.
	archive := b.Path("work/offline/dist/initramfs.cpio.xz")
	before, _ := os.ReadFile(archive)
	out, err = run(t, b.Dir, offlineEnv, "scripts/build.sh", "--rebuild-from", "initramfs_create")
	if err != nil || !strings.Contains(out, "[initramfs_create] running") || !strings.Contains(out, "[kernel_build] running") {
		t.Fatalf("build.sh --rebuild-from initramfs_create: %v\n%s", err, out)
	}
	after, _ := os.ReadFile(archive)
	if len(before) == 0 || !bytes.Equal(before, after) {
		t.Errorf("the rebuilt initramfs differs from the first (%d vs %d bytes)", len(before), len(after))
	}
}

// flistOnly checks that rel is in the flist fl and not in the image's
// initramfs under inImage: what the boot reads through the flist cannot
// come from the image.
func flistOnly(t *testing.T, b *OfflineBuild, fl, rel, inImage string) {
	t.Helper()
	r, err := flist.Open(fl)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.LookupPath(context.Background(), rel); err != nil {
		t.Errorf("%s lacks %s: %v", fl, rel, err)
	}
	var list bytes.Buffer
	if err := initramfs.List(context.Background(), &list, b.Path("work/offline/dist/initramfs.cpio.xz")); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(list.String(), " "+inImage+"\n") || strings.Contains(list.String(), " "+inImage+" ") {
		t.Errorf("the initramfs carries %s: the boot would not prove the flist", inImage)
	}
}

// embeddedFlist returns the path of the one flist in the build whose name
// starts with prefix.
func embeddedFlist(t *testing.T, b *OfflineBuild, prefix string) string {
	t.Helper()
	m, _ := filepath.Glob(b.Path("work/offline/dist/flists/" + prefix + "*.fl"))
	if len(m) != 1 {
		t.Fatalf("flists %s*: %v", prefix, m)
	}
	return m[0]
}

// selfTestResults parses the self-test's PASS and FAIL lines: check name
// to its line.
func selfTestResults(console string) (pass, fail map[string]string) {
	pass, fail = map[string]string{}, map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^SELFTEST (PASS|FAIL) (\w+): (.*)$`).FindAllStringSubmatch(console, -1) {
		if m[1] == "PASS" {
			pass[m[2]] = strings.TrimRight(m[3], "\r")
		} else {
			fail[m[2]] = strings.TrimRight(m[3], "\r")
		}
	}
	return pass, fail
}

// TestOfflineProfileBootSelfTest is the runtime proof: the offline image
// boots under QEMU with the build's store served to it, the real zinit runs
// the shipped units and the profile's self-test unit, which checks them all
// (see selfTestChecks) and reboots. The firmware read back through the
// flist must have the build host's sha256.
func TestOfflineProfileBootSelfTest(t *testing.T) {
	b := SharedOffline(t)
	modFL := embeddedFlist(t, b, "modules-")
	fwFL := embeddedFlist(t, b, "firmware-")
	// The flists route where runit.sh serves the store, whatever the path
	// of the work tree they were built in.
	for _, fl := range []string{modFL, fwFL} {
		r, err := flist.Open(fl)
		if err != nil {
			t.Fatal(err)
		}
		routes, err := r.Routes(context.Background())
		r.Close()
		if err != nil || len(routes) != 1 || routes[0].URL != storeRoute {
			t.Errorf("%s routes %+v (%v), want the one route %s", fl, routes, err, storeRoute)
		}
	}
	flistOnly(t, b, modFL, flistModule, "lib/modules/")
	fwSrc := b.Path("work/offline/firmware/" + fixtures.FlistOnlyFirmware)
	flistOnly(t, b, fwFL, fixtures.FlistOnlyFirmware, "lib/firmware/"+fixtures.FlistOnlyFirmware)
	fw, err := os.ReadFile(fwSrc)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(fw)
	wantSum := hex.EncodeToString(sum[:])

	code, console := b.Boot(t, BootOptions{Store: true})
	if code != 0 {
		t.Fatalf("runit.sh exited %d, want 0 (the self-test reboots the VM)\n%s", code, console)
	}
	pass, fail := selfTestResults(console)
	for _, check := range selfTestChecks {
		if _, ok := pass[check]; !ok {
			t.Errorf("self-test check %s did not pass: %s", check, fail[check])
		}
	}
	if !regexp.MustCompile(`SELFTEST DONE: 7 passed, 0 failed`).MatchString(console) {
		t.Errorf("no clean SELFTEST DONE line")
	}
	// runit.sh --net restricted: QEMU's DHCP server gives no router.
	if p := pass["dhcp"]; p != "eth0 10.0.2.15/24 from 10.0.2.2" {
		t.Errorf("dhcp: %q, want QEMU's lease: eth0 10.0.2.15/24 from 10.0.2.2", p)
	}
	if p := pass["firmware"]; !strings.Contains(p, "sha256 "+wantSum) {
		t.Errorf("firmware read back as %q, want sha256 %s (the build host's %s)", p, wantSum, fwSrc)
	}
	if p := pass["pid1"]; !strings.Contains(p, "zinit v0.2.14") {
		t.Errorf("pid1: %q", p)
	}
	if t.Failed() {
		t.Logf("console:\n%s", console)
	}
	// The measurements, for the README.
	for _, m := range regexp.MustCompile(`(?m)^(SELFTEST (?:INFO (?:all units up|first read|rfs memory)|PASS (?:modprobe|firmware)).*|init: / is a tmpfs.*)$`).FindAllString(console, -1) {
		t.Log(strings.TrimRight(m, "\r"))
	}
}

// TestOfflineProfileBootWithoutStore: the same image with no store
// reachable. The rfs units give up after their bounded retries and say so
// on the console; every other unit still comes up, and the self-test fails
// exactly the checks that need the flists.
func TestOfflineProfileBootWithoutStore(t *testing.T) {
	b := SharedOffline(t)
	code, console := b.Boot(t, BootOptions{Append: "RFS_STORE_TRIES=2 RFS_STORE_TIMEOUT=10"})
	if code != 0 {
		t.Fatalf("runit.sh exited %d, want 0 (the self-test reboots the VM)\n%s", code, console)
	}
	for _, kind := range []string{"modules", "firmware"} {
		re := regexp.MustCompile(`rfs-` + kind + `: its store does not answer: reading \S+ failed 2 times \(not mounting /lib/`)
		if !re.MatchString(console) {
			t.Errorf("the console does not say rfs-%s gave up on its store", kind)
		}
	}
	pass, fail := selfTestResults(console)
	var failed []string
	for name := range fail {
		failed = append(failed, name)
	}
	slices.Sort(failed)
	if want := []string{"firmware", "flists", "modprobe"}; !slices.Equal(failed, want) {
		t.Errorf("failed checks %v, want %v: %v", failed, want, fail)
	}
	for _, check := range []string{"pid1", "units", "dhcp", "rootfs"} {
		if _, ok := pass[check]; !ok {
			t.Errorf("check %s did not pass without a store", check)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", console)
	}
}
