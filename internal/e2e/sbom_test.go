package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/sbom"
)

// TestOfflineSBOMAndImageDiff is the end-to-end test of issue 15 on the
// offline profile: the build writes dist/sbom.spdx.json, which the SPDX
// library reads back and validates; every regular file of the archive is
// accounted for; `mage image:sbom` reads the copy the kernel carries; and
// after changing one unit, one module and one firmware entry an
// incremental build gives an `image:diff` that names exactly those changes.
// It works on the shared offline build and puts it back as it was.
func TestOfflineSBOMAndImageDiff(t *testing.T) {
	b := SharedOffline(t)
	dir, env := b.Dir, offlineEnv
	dist := filepath.Join(dir, "work/offline/dist")

	// The SBOM reads back with the SPDX library and is valid.
	data, err := os.ReadFile(filepath.Join(dist, "sbom.spdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Fatal(err)
	}
	if err := sbom.Validate(doc); err != nil {
		t.Fatal(err)
	}
	inv, err := sbom.FromDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture minirootfs's apk database: the base layout, the release,
	// busybox and the mirror's signing keys (alpine-keys).
	var names []string
	for _, p := range inv.Packages {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"alpine-baselayout-data", "alpine-keys", "alpine-release", "busybox"}) ||
		inv.Kernel.FullVersion == "" || len(inv.Components) != 2 || len(inv.Flists) != 2 {
		t.Errorf("the SBOM misses what the image holds: packages %+v, kernel %+v, components %+v, flists %d",
			inv.Packages, inv.Kernel, inv.Components, len(inv.Flists))
	}

	// Every regular file of the archive is accounted for.
	img, err := sbom.Load(t.Context(), filepath.Join(dist, "initramfs.cpio.xz"))
	if err != nil {
		t.Fatal(err)
	}
	if bad := img.Inventory.Unexplained(); len(bad) > 0 {
		t.Errorf("files of the image nothing accounts for: %v", bad)
	}
	if len(img.Inventory.Files) != len(inv.Files) {
		t.Errorf("the archive has %d regular files (besides the SBOM), the SBOM %d", len(img.Inventory.Files), len(inv.Files))
	}

	// image:sbom reads the copy inside the kernel.
	out, err := mageStdout(t, dir, env, "image:sbom", filepath.Join(dist, "vmlinuz.efi"))
	if err != nil {
		t.Fatalf("image:sbom: %v\n%s", err, out)
	}
	embedded, err := sbom.Unmarshal([]byte(out))
	if err != nil {
		t.Fatalf("image:sbom output: %v", err)
	}
	if embedded.BuildID != inv.BuildID || len(embedded.Files) != len(inv.Files) {
		t.Errorf("the embedded SBOM describes build %s with %d files, not %s with %d", embedded.BuildID, len(embedded.Files), inv.BuildID, len(inv.Files))
	}

	// Keep the first build, change one unit, one module, one firmware entry.
	a := t.TempDir()
	for _, f := range []string{"vmlinuz.efi", "initramfs.cpio.xz", "sbom.spdx.json"} {
		b, err := os.ReadFile(filepath.Join(dist, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(a, f), b, 0o644)
	}
	for _, c := range inv.Components {
		if c.Name == "zinit" && c.Revision == "" {
			t.Errorf("the SBOM has no revision for the git component zinit: %+v", c)
		}
	}
	b.Append(t, "zinit/udevd.yaml", "# changed by TestOfflineSBOMAndImageDiff\n")
	b.Append(t, "config/profiles/offline/modules.conf", "stage2:efivarfs\n")
	b.Append(t, "work/offline/firmware/fixture/e2e-nic.bin", "firmware added by TestOfflineSBOMAndImageDiff\n")
	if out, err := mage(t, dir, env, "build"); err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	} else if strings.Contains(out, "[kernel_modules] running") {
		t.Errorf("the incremental build rebuilt the kernel modules:\n%s", out)
	}

	out, err = mageStdout(t, dir, append(env, "JSON=1"), "image:diff", filepath.Join(a, "vmlinuz.efi"), filepath.Join(dist, "vmlinuz.efi"))
	if err != nil {
		t.Fatalf("image:diff: %v\n%s", err, out)
	}
	var d sbom.Diff
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("image:diff JSON: %v\n%s", err, out)
	}
	full := inv.Kernel.FullVersion
	check := func(what string, got []sbom.FileChange, want ...string) {
		t.Helper()
		var paths []string
		for _, c := range got {
			paths = append(paths, string(c.Status)+" "+c.Path)
		}
		if !reflect.DeepEqual(paths, want) {
			t.Errorf("%s: %q, want %q", what, paths, want)
		}
	}
	check("files", d.Files, "changed etc/zinit/udevd.yaml")
	check("firmware", d.Firmware, "added lib/firmware/fixture/e2e-nic.bin")
	if len(d.Modules) != 1 || d.Modules[0].Status != sbom.Added || !strings.HasPrefix(d.Modules[0].Path, "lib/modules/"+full+"/kernel/fs/efivarfs/efivarfs.ko") {
		t.Errorf("modules: %+v", d.Modules)
	}
	if len(d.Packages)+len(d.Components)+len(d.Kernel) != 0 {
		t.Errorf("packages %+v, components %+v, kernel %+v changed", d.Packages, d.Components, d.Kernel)
	}
	if len(d.Flists) != 1 || d.Flists[0].Kind != sbom.FlistFirmware {
		t.Fatalf("flists: %+v", d.Flists)
	}
	check("firmware flist", d.Flists[0].Files, "added fixture/e2e-nic.bin")
	// What follows from those changes, and nothing else.
	var generated []string
	for _, c := range d.Generated {
		generated = append(generated, c.Path)
	}
	sort.Strings(generated)
	allowed := map[string]bool{"etc/zero-os-build-id": true, "etc/issue": true, "etc/motd": true,
		"etc/zero-os/modules-stage2.list": true, "etc/rfs/firmware-latest.fl": true}
	for _, p := range generated {
		if !allowed[p] && !strings.HasPrefix(p, "lib/modules/"+full+"/modules.") {
			t.Errorf("generated file %s changed, which none of the three changes explains", p)
		}
	}
	for _, p := range []string{"etc/zero-os-build-id", "etc/zero-os/modules-stage2.list", "etc/rfs/firmware-latest.fl"} {
		if !allowed[p] || !contains(generated, p) {
			t.Errorf("generated changes %v lack %s", generated, p)
		}
	}

	// The summary, between the two SBOMs of dist/.
	out, err = mage(t, dir, env, "image:diff", filepath.Join(a, "sbom.spdx.json"), filepath.Join(dist, "sbom.spdx.json"))
	if err != nil {
		t.Fatalf("image:diff: %v\n%s", err, out)
	}
	for _, want := range []string{"files: 1 changed\n  ~ etc/zinit/udevd.yaml [zinit/]", "firmware: 1 changed\n  + lib/firmware/fixture/e2e-nic.bin [firmware-dir-fixture]",
		"modules: 1 changed\n  + lib/modules/" + full + "/kernel/fs/efivarfs/efivarfs.ko", "+ fixture/e2e-nic.bin [firmware-dir-fixture]"} {
		if !strings.Contains(out, want) {
			t.Errorf("image:diff summary lacks %q:\n%s", want, out)
		}
	}
	t.Logf("image:diff of the two SBOMs:\n%s", out)
}

// mageStdout runs a target and returns what it printed on stdout (the
// error carries stderr).
func mageStdout(t testing.TB, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(testutil.RequireTool(t, "go"), append([]string{"run", "magefile.go"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
