package modules

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/compression"
)

// TestReadModinfoCompressed compresses real Debian modules with the xz and
// zstd tools (and gzip) and checks every field against kmod's modinfo -F on
// the same file (on the plain file for gzip, which Debian's kmod cannot read).
func TestReadModinfoCompressed(t *testing.T) {
	v := debianTree(t)
	xzBin := testutil.RequireTool(t, "xz")
	zstdBin := testutil.RequireTool(t, "zstd")
	modinfo := testutil.RequireTool(t, "modinfo")
	ix, err := Load("/", v, Options{NoStaleCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	fields := []string{"depends", "alias", "firmware", "softdep", "license", "vermagic", "name"}
	// r8169: firmware=; ext4: softdep= and depends=; e1000e: many aliases.
	for _, name := range []string{"r8169", "ext4", "e1000e", "xhci_pci"} {
		src := filepath.Join(ix.Dir, ix.Path(name))
		dir := t.TempDir()
		plain := filepath.Join(dir, name+".ko")
		testutil.CopyFile(t, src, plain, 0o644)
		testutil.Run(t, "", nil, xzBin, "-k", "--check=crc32", "--lzma2=dict=1MiB", plain)
		testutil.Run(t, "", nil, zstdBin, "-q", "-k", plain)
		gz := plain + ".gz"
		gzipFile(t, plain, gz)
		for _, file := range []string{plain, plain + ".xz", plain + ".zst", gz} {
			mi, err := ReadModinfo(file)
			if err != nil {
				t.Fatalf("ReadModinfo(%s): %v", file, err)
			}
			ref := file
			if strings.HasSuffix(file, ".gz") {
				ref = plain
			}
			for _, f := range fields {
				out, err := exec.Command(modinfo, "-F", f, ref).Output()
				if err != nil {
					t.Fatalf("modinfo -F %s %s: %v", f, ref, err)
				}
				want := strings.TrimSuffix(string(out), "\n")
				if got := strings.Join(mi.Get(f), "\n"); got != want {
					t.Errorf("%s %s:\ngot  %q\nwant %q", filepath.Base(file), f, got, want)
				}
			}
		}
	}
}

func TestModinfoAccessors(t *testing.T) {
	mi := parseModinfo([]byte("license=GPL\x00depends=libata,crc-t10dif,\x00alias=pci:v1*\x00alias=pci:v2*\x00firmware=rtl_nic/a.fw\x00softdep=pre: crc32c\x00\x00\x00"))
	if got := strings.Join(mi.Depends(), ","); got != "libata,crc_t10dif" {
		t.Errorf("Depends = %q", got)
	}
	if got := strings.Join(mi.Aliases(), ","); got != "pci:v1*,pci:v2*" {
		t.Errorf("Aliases = %q", got)
	}
	if got := strings.Join(mi.Firmware(), ","); got != "rtl_nic/a.fw" {
		t.Errorf("Firmware = %q", got)
	}
	if got := strings.Join(mi.Softdeps(), ","); got != "pre: crc32c" {
		t.Errorf("Softdeps = %q", got)
	}
}

func TestReadModinfoErrors(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "x.ko")
	testutil.WriteFile(t, notELF, "not an elf file", 0o644)
	if _, err := ReadModinfo(notELF); err == nil || !strings.Contains(err.Error(), notELF) {
		t.Errorf("err = %v, want one naming %s", err, notELF)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadModinfo(self); !errors.Is(err, ErrNoModinfo) {
		t.Errorf("err = %v, want ErrNoModinfo", err)
	}
	badXZ := filepath.Join(dir, "y.ko.xz")
	testutil.WriteFile(t, badXZ, string(compression.XZMagic)+"garbage", 0o644)
	if _, err := ReadModinfo(badXZ); err == nil || !strings.Contains(err.Error(), "xz") {
		t.Errorf("err = %v, want an xz error", err)
	}
}

func gzipFile(t testing.TB, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, dst, b.String(), 0o644)
}
