package sbom

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/cpio"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
)

func TestParseApkInstalled(t *testing.T) {
	db := "C:Q1qGm+6m8h0lY1pIuG0KqN1zqUf0Y=\nP:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\no:busybox\n" +
		"U:https://busybox.net/\nT:Size optimized toolbox\nD:so:libc.musl-x86_64.so.1\n" +
		"F:bin\nR:busybox\na:0:0:755\nZ:Q1abc=\nF:etc\nR:securetty\nF:etc/network\nF:etc/network/if-up.d\nR:dad\n\n" +
		"P:musl\nV:1.2.5-r10\nF:lib\nR:ld-musl-x86_64.so.1\n"
	pkgs, err := ParseApkInstalled(strings.NewReader(db), "installed")
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Name: "busybox", Version: "1.36.1-r29", Arch: "x86_64", Origin: "busybox", License: "GPL-2.0-only",
			URL: "https://busybox.net/", Description: "Size optimized toolbox", Checksum: "Q1qGm+6m8h0lY1pIuG0KqN1zqUf0Y=",
			Files: []string{"bin/busybox", "etc/securetty", "etc/network/if-up.d/dad"}},
		{Name: "musl", Version: "1.2.5-r10", Files: []string{"lib/ld-musl-x86_64.so.1"}},
	}
	if !reflect.DeepEqual(pkgs, want) {
		t.Errorf("got %+v\nwant %+v", pkgs, want)
	}
	if algo, sum, ok := pkgs[0].ChecksumHex(); !ok || algo != "SHA1" || sum != "a869beea6f21d25635a48b86d0aa8dd73a947f46" {
		t.Errorf("checksum: %s %s %v", algo, sum, ok)
	}
	for _, bad := range []struct{ db, want string }{
		{"P:a\nV:1\n\nV:2\nR:x\n", "installed:4: package without P: or V:"},
		{"P:x\nV:1\nF:..\nR:passwd\n", "leaves the root"},
		{"P:x\nV:1\nnonsense\n", `installed:3: want K:value, got "nonsense"`},
	} {
		if _, err := ParseApkInstalled(strings.NewReader(bad.db), "installed"); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err %v, want %q", bad.db, err, bad.want)
		}
	}
}

// Every regular file of the image is explained, by the rule a maintainer
// would expect, and a stray file is reported.
func TestGenerateExplainsEveryFile(t *testing.T) {
	im := newImage(t)
	testutil.WriteFile(t, filepath.Join(im.root, "opt/stray"), "nobody knows\n", 0o644)
	inv := im.generate(t)
	if got := inv.Unexplained(); !reflect.DeepEqual(got, []string{"opt/stray"}) {
		t.Errorf("unexplained: %v", got)
	}
	want := map[string][2]string{
		"bin/busybox":                                {"package", "busybox"},
		"usr/lib/libfoo.so.1":                        {"package", "libfoo"},
		"lib/firmware/rtl_nic/rtl8168h-2.fw":         {"firmware", "linux-firmware-rtl_nic"},
		"lib/firmware/fixture/fixture-nic.bin":       {"firmware", "firmware-dir-fixture"},
		"sbin/zinit":                                 {"component", "zinit"},
		"init":                                       {"config", "config/init"},
		"etc/zinit/udevd.yaml":                       {"config", "zinit/"},
		"etc/zinit/init/udev.sh":                     {"config", "zinit/"},
		"etc/zero-os-build-id":                       {"generated", "initramfs_create"},
		"etc/hostname":                               {"generated", "alpine_configure"},
		"lib/apk/db/installed":                       {"generated", "alpine_packages"},
		"etc/rfs/firmware-latest.fl":                 {"generated", "rfs_flists"},
		"lib/modules/" + testKernel + "/modules.dep": {"generated", "modules_copy"},
		"lib/modules/" + testKernel + "/kernel/drivers/net/virtio_net.ko": {"module", OwnerModules},
	}
	got := map[string]File{}
	for _, f := range inv.Files {
		got[f.Path] = f
	}
	for p, w := range want {
		if f := got[p]; string(f.Kind) != w[0] || f.Owner != w[1] {
			t.Errorf("%s: %q/%q, want %q/%q", p, f.Kind, f.Owner, w[0], w[1])
		}
	}
	if _, ok := got["bin/sh"]; ok {
		t.Error("a symlink is listed as a file")
	}
	if inv.Components[0].BinarySHA256 != got["sbin/zinit"].SHA256 || inv.Components[0].Source != "https://git.example.org/threefoldtech/zinit.git" {
		t.Errorf("component: %+v", inv.Components[0])
	}
	if len(inv.Firmware) != 1 || inv.Firmware[0].Name != "fixture" {
		t.Errorf("firmware entries: %+v", inv.Firmware)
	}
	fw := inv.Flists[0]
	if fw.Kind != FlistFirmware || len(fw.Files) != 2 || fw.Files[0].Owner != "firmware-dir-fixture" || fw.Files[1].Owner != "" {
		t.Errorf("firmware flist: %+v", fw)
	}
	mods := inv.Flists[1]
	if mods.Kind != FlistModules || len(mods.Files) != 4 || mods.Files[0].Path != "kernel/drivers/net/dummy.ko" || mods.Files[0].Kind != KindModule {
		t.Errorf("modules flist: %+v", mods)
	}
}

// The written document reads back with the SPDX library's reader, passes
// its validation and ours, and gives back the same inventory.
func TestWrittenSBOMReadsBackAndValidates(t *testing.T) {
	im := newImage(t)
	inv := im.generate(t)
	data, err := Marshal(inv)
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
	if err := Validate(doc); err != nil {
		t.Fatal(err)
	}
	back, err := FromDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	wantInv := *inv
	wantInv.Packages = nil
	for _, p := range inv.Packages {
		p.Files = nil
		wantInv.Packages = append(wantInv.Packages, p)
	}
	if !reflect.DeepEqual(back, &wantInv) {
		t.Errorf("read back:\n%+v\nwant\n%+v", back, &wantInv)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 || described[0] != idImage {
		t.Errorf("described: %v %v", described, err)
	}
	for _, want := range []string{`"licenseDeclared": "LicenseRef-apk-custom-foo-`, `"extractedText": "custom:foo"`,
		`"referenceLocator": "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=alpine-3.22.0&upstream=busybox"`,
		`"downloadLocation": "git+https://git.example.org/threefoldtech/zinit.git@0123456789abcdef0123456789abcdef01234567"`,
		`"created": "2023-11-14T22:13:20Z"`, `"relationshipType": "GENERATED_FROM"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("document lacks %s", want)
		}
	}
}

// Same inputs give the same bytes, wherever the tree is; any change gives
// a new document namespace.
func TestSBOMIsReproducible(t *testing.T) {
	im := newImage(t)
	a, err := Marshal(im.generate(t))
	if err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(t.TempDir(), "elsewhere")
	if out, err := exec.Command("cp", "-a", im.dir, moved).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	im2 := *im
	rebase := func(p string) string { return filepath.Join(moved, strings.TrimPrefix(p, im.dir)) }
	im2.dir, im2.root, im2.modules, im2.firmware = moved, rebase(im.root), rebase(im.modules), rebase(im.firmware)
	b, err := Marshal(im2.generate(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("the same tree elsewhere gives another document")
	}
	// Negative controls: another time, another file content.
	opt := im2.options()
	opt.Created = testEpoch.Add(time.Second)
	later, _ := Generate(context.Background(), opt)
	c, _ := Marshal(later)
	testutil.WriteFile(t, filepath.Join(im2.root, "etc/zinit/udevd.yaml"), "exec: udevd --debug\n", 0o644)
	d, _ := Marshal(im2.generate(t))
	if bytes.Equal(a, c) || bytes.Equal(a, d) {
		t.Fatal("the document does not depend on its inputs")
	}
	ns := func(b []byte) string {
		i := bytes.Index(b, []byte(`"documentNamespace"`))
		return string(b[i : i+bytes.IndexByte(b[i:], '\n')])
	}
	if ns(a) == ns(d) {
		t.Error("a changed image keeps the document namespace")
	}
}

func TestValidateRejects(t *testing.T) {
	im := newImage(t)
	for _, tc := range []struct {
		name, old, new, want string
		n                    int // replacements; 0 means 1
	}{
		{"bad id", `"SPDXID": "SPDXRef-Kernel"`, `"SPDXID": "SPDXRef-Ker_nel"`, "only letters, digits", 0},
		{"no sha1", `"algorithm": "SHA1"`, `"algorithm": "MD5"`, "has no SHA1 checksum", -1},
		{"bad license", `"licenseDeclared": "GPL-2.0-only"`, `"licenseDeclared": "GPL-2.0-only AND Nonsense-1"`, "not an SPDX expression", 0},
		{"undefined ref", `"licenseId": "LicenseRef-apk-custom-foo-`, `"licenseId": "LicenseRef-other-`, "not defined in hasExtractedLicensingInfos", 0},
		{"verification code", `"packageVerificationCodeValue": "`, `"packageVerificationCodeValue": "0`, "does not match its files", 0},
		{"dangling relationship", `"relatedSpdxElement": "SPDXRef-Kernel"`, `"relatedSpdxElement": "SPDXRef-Nothing"`, "no such package", 0},
		{"created", `"created": "2023-11-14T22:13:20Z"`, `"created": "yesterday"`, "not YYYY-MM-DDThh:mm:ssZ", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Marshal(im.generate(t))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(tc.old)) {
				t.Fatalf("document lacks %s", tc.old)
			}
			n := tc.n
			if n == 0 {
				n = 1
			}
			_, err = Unmarshal(bytes.Replace(data, []byte(tc.old), []byte(tc.new), n))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// An flist that no longer matches its tree fails: the SBOM would describe
// what nodes do not get.
func TestStaleFlistFails(t *testing.T) {
	im := newImage(t)
	testutil.WriteFile(t, filepath.Join(im.modules, "kernel/drivers/net/dummy.ko"), "rebuilt dummy module", 0o644)
	_, err := Generate(context.Background(), im.options())
	if !errors.Is(err, ErrStaleFlist) || !strings.Contains(err.Error(), "kernel/drivers/net/dummy.ko") {
		t.Errorf("err %v", err)
	}
}

// The copy in the image is small, reads back with xz and busybox's xzcat,
// and is the full SBOM without the flists' file lists.
func TestEmbeddedCopy(t *testing.T) {
	im := newImage(t)
	archive, inv := im.build(t)
	data, err := os.ReadFile(filepath.Join(im.root, EmbeddedPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range [][]string{{"xz", "-dc"}, {"busybox", "xzcat"}} {
		cmd := exec.Command(testutil.RequireTool(t, tool[0]), tool[1:]...)
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil || !bytes.HasPrefix(out, []byte(`{"spdxVersion":"SPDX-2.3"`)) {
			t.Errorf("%s: %v %.60q", tool, err, out)
		}
	}
	img, err := Load(context.Background(), archive)
	if err != nil {
		t.Fatal(err)
	}
	if !img.HasSBOM || img.Inventory.BuildID != inv.BuildID || len(img.Inventory.Files) != len(inv.Files) {
		t.Fatalf("loaded %+v", img)
	}
	for i, fl := range img.Inventory.Flists {
		// The archive's manifests give the file lists back (without SHA-256).
		if !fl.FilesListed || len(fl.Files) != len(inv.Flists[i].Files) || fl.SHA256 != inv.Flists[i].SHA256 {
			t.Errorf("flist %s: %+v", fl.Name, fl)
		}
	}
	js, err := decompress(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(js, []byte("kernel/drivers/net/dummy.ko")) {
		t.Error("the embedded copy lists flist files")
	}
}

// TestAccountsForEveryArchiveFile reads the packed archive with the
// initramfs reader: every regular file in it is a file of the SBOM with an
// owner, or the SBOM itself.
func TestAccountsForEveryArchiveFile(t *testing.T) {
	im := newImage(t)
	archive, inv := im.build(t)
	known := map[string]File{}
	for _, f := range inv.Files {
		known[f.Path] = f
	}
	n := 0
	err := initramfs.Walk(context.Background(), archive, walkFiles(func(name string) {
		n++
		if name == EmbeddedPath {
			return
		}
		if f, ok := known[name]; !ok || f.Kind == KindUnknown {
			t.Errorf("%s is not accounted for (%+v)", name, f)
		}
	}))
	if err != nil || n != len(inv.Files)+1 {
		t.Errorf("walked %d regular files for %d in the SBOM: %v", n, len(inv.Files), err)
	}
}

// walkFiles calls fn with the name of every regular file of an archive.
func walkFiles(fn func(name string)) func(*cpio.Header, io.Reader) error {
	return func(h *cpio.Header, _ io.Reader) error {
		if h.Type() == cpio.TypeReg {
			fn(strings.TrimPrefix(h.Name, "./"))
		}
		return nil
	}
}
