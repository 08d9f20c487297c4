package sbom

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// twoBuilds builds the test image, copies the outputs aside, changes one
// unit, adds one module and one firmware file, and builds again, as a
// maintainer's incremental rebuild would. It returns the outputs of both.
func twoBuilds(t *testing.T, im *image) (a, b map[string]string) {
	t.Helper()
	keep := func(tag string) map[string]string {
		archive, _ := im.build(t)
		dir := filepath.Join(im.dir, tag)
		out := map[string]string{}
		for name, src := range map[string]string{"archive": archive, "sbom": filepath.Join(im.dist, "sbom.spdx.json")} {
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = filepath.Join(dir, filepath.Base(src))
			testutil.WriteFile(t, out[name], string(data), 0o644)
		}
		out["kernel"] = filepath.Join(dir, "vmlinuz.efi")
		fakeKernel(t, archive, out["kernel"])
		return out
	}
	a = keep("a")
	mod := "lib/modules/" + testKernel + "/kernel/drivers/net/dummy.ko"
	testutil.WriteFile(t, filepath.Join(im.root, "etc/zinit/udevd.yaml"), "exec: udevd --debug\n", 0o644)
	testutil.WriteFile(t, filepath.Join(im.root, mod), "dummy module", 0o644)
	testutil.WriteFile(t, filepath.Join(im.root, "lib/modules", testKernel, "modules.dep"), "kernel/drivers/net/virtio_net.ko:\nkernel/drivers/net/dummy.ko:\n", 0o644)
	testutil.WriteFile(t, filepath.Join(im.root, "etc/zero-os/modules-stage1.list"), "virtio_net\ndummy\n", 0o644)
	testutil.WriteFile(t, filepath.Join(im.firmware, "fixture/new-nic.bin"), "new firmware\n", 0o644)
	testutil.WriteFile(t, filepath.Join(im.root, "lib/firmware/fixture/new-nic.bin"), "new firmware\n", 0o644)
	testutil.WriteFile(t, filepath.Join(im.root, "etc/zero-os-build-id"), "20231114T221320Z-gabc-f4567\n", 0o644)
	im.packFlists(t)
	return a, keep("b")
}

func paths(cs []FileChange) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Status)+" "+c.Path)
	}
	return out
}

// Whatever the inputs are (two kernels, two archives, two SBOMs, or a mix),
// the diff names exactly what changed: one unit, one module, one firmware
// file (in the image and in the firmware flist), and lists the files that
// follow from them as generated.
func TestDiffNamesExactlyTheChanges(t *testing.T) {
	im := newImage(t)
	a, b := twoBuilds(t, im)
	ctx := context.Background()
	for _, pair := range [][2]string{{"kernel", "kernel"}, {"archive", "archive"}, {"sbom", "sbom"}, {"sbom", "kernel"}} {
		t.Run(pair[0]+"-"+pair[1], func(t *testing.T) {
			ia, err := Load(ctx, a[pair[0]])
			if err != nil {
				t.Fatal(err)
			}
			ib, err := Load(ctx, b[pair[1]])
			if err != nil {
				t.Fatal(err)
			}
			d := Compare(ia, ib)
			check := func(what string, got, want []string) {
				t.Helper()
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %q, want %q", what, got, want)
				}
			}
			check("files", paths(d.Files), []string{"changed etc/zinit/udevd.yaml"})
			check("modules", paths(d.Modules), []string{"added lib/modules/" + testKernel + "/kernel/drivers/net/dummy.ko"})
			check("firmware", paths(d.Firmware), []string{"added lib/firmware/fixture/new-nic.bin"})
			check("generated", paths(d.Generated), []string{"changed etc/rfs/firmware-latest.fl", "changed etc/zero-os-build-id",
				"changed etc/zero-os/modules-stage1.list", "changed lib/modules/" + testKernel + "/modules.dep"})
			if len(d.Packages)+len(d.Components)+len(d.Kernel) != 0 {
				t.Errorf("packages %v, components %v, kernel %v changed", d.Packages, d.Components, d.Kernel)
			}
			if len(d.Flists) != 1 || d.Flists[0].Kind != FlistFirmware || !reflect.DeepEqual(paths(d.Flists[0].Files), []string{"added fixture/new-nic.bin"}) {
				t.Errorf("flists: %+v", d.Flists)
			}
			if d.BuildID == nil || d.BuildID.To != "20231114T221320Z-gabc-f4567" {
				t.Errorf("build id: %+v", d.BuildID)
			}
			if d.Firmware[0].Owner != "firmware-dir-fixture" || d.Files[0].Kind != KindConfig {
				t.Errorf("owners: %+v %+v", d.Firmware[0], d.Files[0])
			}
			var text bytes.Buffer
			if err := d.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"modules: 1 changed\n  + lib/modules/" + testKernel + "/kernel/drivers/net/dummy.ko [linux-modules] (12 bytes)",
				"firmware: 1 changed\n  + lib/firmware/fixture/new-nic.bin [firmware-dir-fixture] (13 bytes)",
				"files: 1 changed\n  ~ etc/zinit/udevd.yaml [zinit/] (12 -> 20 bytes, sha256 ",
				"      + fixture/new-nic.bin [firmware-dir-fixture] (13 bytes)",
				"generated files (follow from the changes above): 4 changed"} {
				if !strings.Contains(text.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, text.String())
				}
			}
			js, err := json.Marshal(d)
			if err != nil || !bytes.Contains(js, []byte(`"modules":[{"path":"lib/modules/`+testKernel+`/kernel/drivers/net/dummy.ko","status":"added"`)) {
				t.Errorf("json: %v %s", err, js)
			}
		})
	}
	same, err := Load(ctx, a["kernel"])
	if err != nil {
		t.Fatal(err)
	}
	if d := Compare(same, same); !d.Empty() || d.BuildID != nil {
		t.Errorf("an image differs from itself: %+v", d)
	}
}

// An archive without an SBOM (built before them) still compares: its apk
// database, files and embedded manifests tell most of it.
func TestDiffWithoutSBOM(t *testing.T) {
	im := newImage(t)
	built, _ := im.build(t)
	img, err := Load(context.Background(), built)
	if err != nil {
		t.Fatal(err)
	}
	if !img.HasSBOM {
		t.Fatal("the archive built with an SBOM has none")
	}
	if err := os.Remove(filepath.Join(im.root, EmbeddedPath)); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, filepath.Join(im.root, "lib/apk/db/installed"), apkDB(append(basePackages()[:3], testPkg{"musl", "1.2.5-r10", "MIT", "musl", []string{"lib/ld-musl-x86_64.so.1"}})), 0o644)
	testutil.WriteFile(t, filepath.Join(im.root, "lib/ld-musl-x86_64.so.1"), "musl", 0o644)
	if err := os.RemoveAll(filepath.Join(im.root, "lib/firmware/rtl_nic")); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(im.dir, "bare.cpio.xz")
	packOnly(t, im.root, bare)
	noSBOM, err := Load(context.Background(), bare)
	if err != nil {
		t.Fatal(err)
	}
	if noSBOM.HasSBOM || noSBOM.Inventory.BuildID != "20231114T221320Z-gabc-f0123" || len(noSBOM.Inventory.Flists) != 2 {
		t.Fatalf("no-SBOM image: %+v", noSBOM.Inventory)
	}
	d := Compare(img, noSBOM)
	var got []string
	for _, p := range d.Packages {
		got = append(got, string(p.Status)+" "+p.Name)
	}
	if !reflect.DeepEqual(got, []string{"removed linux-firmware-rtl_nic", "added musl"}) ||
		!reflect.DeepEqual(paths(d.Files), []string{"added lib/ld-musl-x86_64.so.1"}) ||
		!reflect.DeepEqual(paths(d.Firmware), []string{"removed lib/firmware/rtl_nic/rtl8168h-2.fw"}) || len(d.Notes) == 0 {
		t.Errorf("packages %v, files %v, firmware %v, notes %v", got, paths(d.Files), paths(d.Firmware), d.Notes)
	}
}

// No secret of rfs.conf reaches the SBOM, its embedded copy or a diff:
// routes and component sources lose their credentials.
func TestNoSecretFromRFSConf(t *testing.T) {
	root := t.TempDir()
	secrets := []string{"H15WRITEACCESSKEY", "h15-write-secret-7Qx", "H15READACCESSKEY", "h15-read-secret-9Zk"}
	testutil.WriteFile(t, filepath.Join(root, "config/build.conf"), "", 0o644)
	testutil.WriteFile(t, filepath.Join(root, "config/rfs.conf"), `S3_ENDPOINT="http://s3.example.org:3900"
S3_BUCKET="zos"
S3_ACCESS_KEY="`+secrets[0]+`"
S3_SECRET_KEY="`+secrets[1]+`"
READ_ACCESS_KEY="`+secrets[2]+`"
READ_SECRET_KEY="`+secrets[3]+`"
ROUTE_ENDPOINT="https://gw.example.org:443"
`, 0o644)
	cfg, err := config.Load(config.Options{Root: root, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	route, err := cfg.RFS.RouteURL()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(route, secrets[3]) {
		t.Fatalf("the route %q does not carry the read secret: the test would prove nothing", route)
	}
	im := newImage(t)
	im.route = []store.Route{{Start: 0, End: 255, URL: route}}
	im.packFlists(t)
	opt := im.options()
	opt.Components[0].Source = "https://" + secrets[2] + ":" + secrets[1] + "@git.example.org/zinit.git"
	inv, err := Generate(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Flists[0].Routes[0] != "s3s://gw.example.org:443/blobs?region=garage" {
		t.Errorf("route in the SBOM: %q", inv.Flists[0].Routes)
	}
	full, err := Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := Embedded(inv)
	if err != nil {
		t.Fatal(err)
	}
	js, err := decompress(bytes.NewReader(embedded))
	if err != nil {
		t.Fatal(err)
	}
	img := &Image{Path: "a", Inventory: inv, HasSBOM: true}
	other := *inv
	other.Flists = append([]Flist(nil), inv.Flists...)
	other.Flists[0].Routes = []string{"s3://other.example.org/blobs"}
	d := Compare(img, &Image{Path: "b", Inventory: &other, HasSBOM: true})
	var text bytes.Buffer
	d.WriteText(&text)
	dj, _ := json.Marshal(d)
	for name, out := range map[string][]byte{"sbom": full, "embedded": js, "diff": text.Bytes(), "diff json": dj} {
		for _, s := range secrets {
			if bytes.Contains(out, []byte(s)) {
				t.Errorf("%s holds the secret %s", name, s)
			}
		}
	}
	if !strings.Contains(text.String(), "route s3s://gw.example.org:443/blobs?region=garage -> s3://other.example.org/blobs") {
		t.Errorf("diff does not show the route change:\n%s", text.String())
	}
}
