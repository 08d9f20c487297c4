package kernel

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// BuildIDPath is where the rootfs records the build id, relative to the
// initramfs root.
const BuildIDPath = "etc/zero-os-build-id"

// ErrStaleInitramfs is wrapped when the kernel image does not carry the
// initramfs it was supposed to embed.
var ErrStaleInitramfs = errors.New("kernel does not embed the expected initramfs")

// ErrNotBzImage is wrapped for a file without a Linux x86 boot header.
var ErrNotBzImage = errors.New("not an x86 bzImage")

// VerifyEmbedded proves that the bzImage carries the initramfs file: it
// decompresses the kernel payload, finds a byte-identical copy of the
// initramfs in it, reads /etc/zero-os-build-id from that copy and compares
// it with buildID ("" skips the comparison). It returns the build id it
// read. When no identical copy is found it looks for any embedded xz
// initramfs to report which build id the kernel carries instead.
func VerifyEmbedded(ctx context.Context, bzImage, initramfs, buildID string) (string, error) {
	vmlinux, err := Payload(ctx, bzImage)
	if err != nil {
		return "", err
	}
	want, err := os.ReadFile(initramfs)
	if err != nil {
		return "", fmt.Errorf("verify embedded initramfs: %w", err)
	}
	i := bytes.Index(vmlinux, want)
	if i < 0 {
		if other, ok := findEmbeddedBuildID(vmlinux); ok {
			return "", fmt.Errorf("%w: %s carries an initramfs with build id %q, not %s (build id %q)",
				ErrStaleInitramfs, bzImage, other, initramfs, buildID)
		}
		return "", fmt.Errorf("%w: no copy of %s inside %s", ErrStaleInitramfs, initramfs, bzImage)
	}
	got, err := readBuildID(vmlinux[i : i+len(want)])
	if err != nil {
		return "", fmt.Errorf("verify embedded initramfs of %s: %w", bzImage, err)
	}
	if buildID != "" && got != strings.TrimSpace(buildID) {
		return got, fmt.Errorf("%w: the initramfs inside %s has build id %q, expected %q",
			ErrStaleInitramfs, bzImage, got, strings.TrimSpace(buildID))
	}
	return got, nil
}

// Payload returns the decompressed kernel (vmlinux plus relocations) that
// a bzImage carries, located by the boot protocol header (2.08 or later).
func Payload(ctx context.Context, bzImage string) ([]byte, error) {
	img, err := os.ReadFile(bzImage)
	if err != nil {
		return nil, fmt.Errorf("read kernel image: %w", err)
	}
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return nil, fmt.Errorf("%s: %w", bzImage, ErrNotBzImage)
	}
	if v := binary.LittleEndian.Uint16(img[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("%s: boot protocol %#x has no payload fields: %w", bzImage, v, ErrNotBzImage)
	}
	setupSects := int(img[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(img[0x248:]))
	n := int(binary.LittleEndian.Uint32(img[0x24c:]))
	if off < 0 || n <= 0 || off+n > len(img) {
		return nil, fmt.Errorf("%s: payload [%d, +%d) outside the file: %w", bzImage, off, n, ErrNotBzImage)
	}
	out, err := decompressPayload(ctx, img[off:off+n])
	if err != nil {
		return nil, fmt.Errorf("decompress kernel payload of %s: %w", bzImage, err)
	}
	return out, nil
}

// decompressPayload handles the compressors of CONFIG_KERNEL_*. xz goes
// through the xz tool, whose decoder knows the x86 BCJ filter the kernel
// uses. Kbuild appends the uncompressed size (4 bytes) after xz, zstd and
// lzma streams.
func decompressPayload(ctx context.Context, p []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, err
		}
		zr.Multistream(false)
		return io.ReadAll(zr)
	case bytes.HasPrefix(p, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		cmd := exec.CommandContext(ctx, "xz", "-dc", "--single-stream")
		cmd.Stdin = bytes.NewReader(p)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("xz -dc: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	case bytes.HasPrefix(p, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(nil, zstd.WithDecoderMaxWindow(1<<31), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.DecodeAll(p[:len(p)-4], nil)
	case bytes.HasPrefix(p, []byte("BZh")):
		return io.ReadAll(bzip2.NewReader(bytes.NewReader(p)))
	case bytes.HasPrefix(p, []byte{0x5d, 0, 0}):
		r, err := lzma.NewReader(bytes.NewReader(p[:len(p)-4]))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	return nil, fmt.Errorf("unsupported kernel compression (magic % x); use CONFIG_KERNEL_XZ, ZSTD, GZIP, BZIP2 or LZMA", p[:min(6, len(p))])
}

// ErrNoEmbeddedInitramfs is wrapped when a kernel image carries no xz
// initramfs.
var ErrNoEmbeddedInitramfs = errors.New("no embedded initramfs")

// EmbeddedInitramfs returns the initramfs a bzImage carries: the payload
// from the start of the first xz stream that decompresses to a newc cpio
// archive (what follows the stream is the rest of the kernel).
func EmbeddedInitramfs(ctx context.Context, bzImage string) ([]byte, error) {
	vmlinux, err := Payload(ctx, bzImage)
	if err != nil {
		return nil, err
	}
	for off := range xzStreams(vmlinux) {
		if isCpioXZ(vmlinux[off:]) {
			return vmlinux[off:], nil
		}
	}
	return nil, fmt.Errorf("%s: %w", bzImage, ErrNoEmbeddedInitramfs)
}

// xzStreams yields the offset of every xz stream magic in b.
func xzStreams(b []byte) func(yield func(int) bool) {
	magic := []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	return func(yield func(int) bool) {
		for off := 0; ; {
			i := bytes.Index(b[off:], magic)
			if i < 0 || !yield(off+i) {
				return
			}
			off += i + 1
		}
	}
}

// isCpioXZ reports whether the xz stream at the start of b begins with a
// newc cpio header.
func isCpioXZ(b []byte) bool {
	xr, err := xz.NewReader(bytes.NewReader(b))
	if err != nil {
		return false
	}
	xr.SingleStream = true
	var head [6]byte
	if _, err := io.ReadFull(xr, head[:]); err != nil {
		return false
	}
	return string(head[:]) == "070701" || string(head[:]) == "070702"
}

// findEmbeddedBuildID tries every xz stream inside vmlinux as an
// initramfs and returns the first build id found.
func findEmbeddedBuildID(vmlinux []byte) (string, bool) {
	for off := range xzStreams(vmlinux) {
		if id, err := readBuildID(vmlinux[off:]); err == nil {
			return id, true
		}
	}
	return "", false
}

// readBuildID decompresses an xz newc cpio archive and returns the content
// of BuildIDPath, trimmed.
func readBuildID(archive []byte) (string, error) {
	xr, err := xz.NewReader(bytes.NewReader(archive))
	if err != nil {
		return "", fmt.Errorf("open embedded initramfs: %w", err)
	}
	xr.SingleStream = true
	data, err := cpioFile(xr, BuildIDPath)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// cpioFile reads a newc cpio stream up to the entry named name ("./" prefix
// allowed) and returns its content.
func cpioFile(r io.Reader, name string) ([]byte, error) {
	var hdr [110]byte
	var read int64
	skip := func(n int64) error {
		_, err := io.CopyN(io.Discard, r, n)
		read += n
		return err
	}
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("read cpio header: %w", err)
		}
		read += int64(len(hdr))
		if m := string(hdr[:6]); m != "070701" && m != "070702" {
			return nil, fmt.Errorf("not a newc cpio archive (magic %q)", m)
		}
		field := func(i int) (int64, error) {
			return strconv.ParseInt(string(hdr[6+8*i:14+8*i]), 16, 64)
		}
		size, err1 := field(6)
		nameSize, err2 := field(11)
		if err := errors.Join(err1, err2); err != nil || nameSize <= 0 {
			return nil, fmt.Errorf("bad cpio header: %w", err)
		}
		nb := make([]byte, nameSize)
		if _, err := io.ReadFull(r, nb); err != nil {
			return nil, fmt.Errorf("read cpio name: %w", err)
		}
		read += nameSize
		entry := strings.TrimPrefix(strings.TrimRight(string(nb), "\x00"), "./")
		if entry == "TRAILER!!!" {
			return nil, fmt.Errorf("%s not in the initramfs", name)
		}
		if err := skip((4 - read%4) % 4); err != nil {
			return nil, fmt.Errorf("read cpio: %w", err)
		}
		if entry == name {
			data := make([]byte, size)
			if _, err := io.ReadFull(r, data); err != nil {
				return nil, fmt.Errorf("read %s from cpio: %w", name, err)
			}
			return data, nil
		}
		if err := skip(size + (4-(read+size)%4)%4); err != nil {
			return nil, fmt.Errorf("read cpio: %w", err)
		}
	}
}
