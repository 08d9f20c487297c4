package kernel

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

func TestFullVersion(t *testing.T) {
	dir := t.TempDir()
	cfg := func(content string) string {
		p := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".config")
		testutil.WriteFile(t, p, content, 0o644)
		return p
	}
	for _, c := range []struct {
		name, version, config, want, err string
	}{
		{"quoted", "6.12.44", "# comment\nCONFIG_LOCALVERSION=\"-Zero-OS\"\nCONFIG_X=y\n", "6.12.44-Zero-OS", ""},
		{"empty", "6.12.44", "CONFIG_LOCALVERSION=\"\"\n", "6.12.44", ""},
		{"absent", "6.1.0", "CONFIG_X=y\n", "6.1.0", ""},
		{"not set", "6.1.0", "# CONFIG_LOCALVERSION is not set\n", "6.1.0", ""},
		{"spaces trimmed", " 6.12.44\n", "CONFIG_LOCALVERSION=\"-z\"\n", "6.12.44-z", ""},
		{"empty version", "", "CONFIG_LOCALVERSION=\"-z\"\n", "", "KERNEL_VERSION is empty"},
		{"bad localversion", "6.12.44", "CONFIG_LOCALVERSION=\"-a b\"\n", "", "contains a space"},
		{"malformed", "6.12.44", "CONFIG_LOCALVERSION\n", "", ":1: not a CONFIG_NAME=value line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := FullVersion(c.version, cfg(c.config))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("FullVersion = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	if _, err := FullVersion("6.12.44", filepath.Join(dir, "missing.config")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing config: err = %v", err)
	}
}

func TestCheckRelease(t *testing.T) {
	tree := t.TempDir()
	if err := CheckRelease(tree, "6.12.44-Zero-OS"); err != nil {
		t.Fatalf("unbuilt tree: %v", err)
	}
	testutil.WriteFile(t, filepath.Join(tree, "include/config/kernel.release"), "6.12.44-Zero-OS+\n", 0o644)
	err := CheckRelease(tree, "6.12.44-Zero-OS")
	if !errors.Is(err, ErrVersionMismatch) || !strings.Contains(err.Error(), "6.12.44-Zero-OS+") || !strings.Contains(err.Error(), "give 6.12.44-Zero-OS") {
		t.Fatalf("err = %v, want a mismatch naming both versions", err)
	}
	testutil.WriteFile(t, filepath.Join(tree, "include/config/kernel.release"), "6.12.44-Zero-OS\n", 0o644)
	if err := CheckRelease(tree, "6.12.44-Zero-OS"); err != nil {
		t.Fatal(err)
	}
}

func TestConfigMissing(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "want"), "CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=y\n# CONFIG_D is not set\nCONFIG_S=\"x\"\nCONFIG_N=3\n", 0o644)
	testutil.WriteFile(t, filepath.Join(dir, "got"), "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_S=\"y\"\nCONFIG_N=4\n", 0o644)
	want, err := ReadConfig(filepath.Join(dir, "want"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadConfig(filepath.Join(dir, "got"))
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, d := range Missing(want, got) {
		s = append(s, d.String())
	}
	if strings.Join(s, ";") != "CONFIG_B=m (now y);CONFIG_C=y (now n)" {
		t.Errorf("Missing = %v", s)
	}
	round := want.Bytes()
	if !bytes.Contains(round, []byte("# CONFIG_D is not set\n")) || !bytes.Contains(round, []byte("CONFIG_S=\"x\"\n")) {
		t.Errorf("Bytes() = %s", round)
	}
}

// TestPayloadDebianKernel decompresses the installed Debian kernel's
// payload: it must be the ELF vmlinux.
func TestPayloadDebianKernel(t *testing.T) {
	testutil.RequireTool(t, "xz")
	imgs, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(imgs) == 0 {
		testutil.Missing(t, "no /boot/vmlinuz-* (apt-get install linux-image-amd64)")
	}
	sort.Strings(imgs)
	vmlinux, err := Payload(context.Background(), imgs[len(imgs)-1])
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		t.Fatalf("payload is not ELF: %v", err)
	}
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("payload machine = %v", f.Machine)
	}
	if _, err := Payload(context.Background(), "/bin/sh"); !errors.Is(err, ErrNotBzImage) {
		t.Errorf("Payload(/bin/sh) err = %v, want ErrNotBzImage", err)
	}
}

// TestReadBuildID reads the build id from an archive made by GNU cpio and
// xz --check=crc32, alone and embedded in other bytes.
func TestReadBuildID(t *testing.T) {
	cpio := testutil.RequireTool(t, "cpio")
	xzBin := testutil.RequireTool(t, "xz")
	root := t.TempDir()
	testutil.WriteFile(t, filepath.Join(root, "init"), "#!/bin/sh\n", 0o644)
	testutil.WriteFile(t, filepath.Join(root, "etc/motd"), "hello, three bytes of padding\n", 0o644)
	testutil.WriteFile(t, filepath.Join(root, BuildIDPath), "build-42\n", 0o644)
	pack := func() []byte {
		cmd := exec.Command("sh", "-c", "find . | sort | "+cpio+" -o -H newc --quiet | "+xzBin+" --check=crc32")
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	archive := pack()
	id, err := readBuildID(archive)
	if err != nil || id != "build-42" {
		t.Fatalf("readBuildID = %q, %v", id, err)
	}
	blob := append(append([]byte("junk\xfd7zXZ\x00junk"), archive...), "tail"...)
	if id, ok := findEmbeddedBuildID(blob); !ok || id != "build-42" {
		t.Fatalf("findEmbeddedBuildID = %q, %v", id, ok)
	}
	if err := os.Remove(filepath.Join(root, BuildIDPath)); err != nil {
		t.Fatal(err)
	}
	if _, err := readBuildID(pack()); err == nil || !strings.Contains(err.Error(), "not in the initramfs") {
		t.Fatalf("without build id: err = %v", err)
	}
	// A header whose fields are not hex is a clear error (the hand-made
	// parser once printed "bad cpio header: %!w(<nil>)").
	cmd := exec.Command(xzBin, "--check=crc32")
	cmd.Stdin = strings.NewReader("070701" + strings.Repeat("zz", 52))
	bad, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readBuildID(bad); err == nil || strings.Contains(err.Error(), "%!") || !strings.Contains(err.Error(), "embedded initramfs") {
		t.Errorf("bad header: err = %v", err)
	}
}

// TestDecompressPayload decompresses payloads the way Kbuild lays them out
// (the compressed stream, then, but for gzip, the uncompressed size in 4
// bytes), written by the real compressors, for every CONFIG_KERNEL_* the
// builder reads.
func TestDecompressPayload(t *testing.T) {
	vmlinux := bytes.Repeat([]byte("\x7fELF vmlinux and its relocations "), 20000)
	size := binary.LittleEndian.AppendUint32(nil, uint32(len(vmlinux)))
	for _, c := range []struct{ tool, format string }{
		{"gzip", ""}, {"xz", "--check=crc32"}, {"zstd", "-q"}, {"bzip2", ""}, {"xz", "--format=lzma"},
	} {
		t.Run(c.tool+c.format, func(t *testing.T) {
			testutil.RequireTool(t, c.tool)
			args := []string{"-c"}
			if c.format != "" {
				args = append(args, c.format)
			}
			cmd := exec.Command(c.tool, args...)
			cmd.Stdin = bytes.NewReader(vmlinux)
			packed, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if c.tool != "gzip" {
				packed = append(packed, size...)
			}
			got, err := decompressPayload(context.Background(), packed)
			if err != nil || !bytes.Equal(got, vmlinux) {
				t.Errorf("%d bytes, %v; want the %d bytes compressed", len(got), err, len(vmlinux))
			}
		})
	}
	if _, err := decompressPayload(context.Background(), []byte("\x02\x21\x4c\x18 an lz4 payload")); err == nil || !strings.Contains(err.Error(), "unsupported kernel compression") {
		t.Errorf("lz4: %v", err)
	}
}
