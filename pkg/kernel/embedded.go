package kernel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/compression"
	"github.com/threefoldtech/zosbuilder/pkg/cpio"
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

// HeaderSize is how much of a file HasBootHeader needs to see.
const HeaderSize = 0x206

// HasBootHeader reports whether head, the start of a file, carries the
// Linux x86 boot protocol header ("HdrS" at 0x202): a bzImage such as
// vmlinuz.efi.
func HasBootHeader(head []byte) bool {
	return len(head) >= HeaderSize && string(head[0x202:HeaderSize]) == "HdrS"
}

// Payload returns the decompressed kernel (vmlinux plus relocations) that
// a bzImage carries, located by the boot protocol header (2.08 or later).
func Payload(ctx context.Context, bzImage string) ([]byte, error) {
	img, err := os.ReadFile(bzImage)
	if err != nil {
		return nil, fmt.Errorf("read kernel image: %w", err)
	}
	if len(img) < 0x250 || !HasBootHeader(img) {
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
// through the xz program, whose decoder knows the x86 BCJ filter the kernel
// uses. Kbuild appends the uncompressed size (4 bytes) after every stream
// but gzip's (arch/x86/boot/compressed/Makefile: *_with_size); xz stops
// at its stream's end by itself, the other decoders are given the stream
// alone (Go's bzip2 reader would take the size for a second stream).
func decompressPayload(ctx context.Context, p []byte) ([]byte, error) {
	switch compression.Detect(p) {
	case compression.Plain:
		return nil, fmt.Errorf("unsupported kernel compression (magic % x); use CONFIG_KERNEL_XZ, ZSTD, GZIP, BZIP2 or LZMA", p[:min(6, len(p))])
	case compression.XZ:
		if _, err := exec.LookPath("xz"); err != nil {
			return nil, fmt.Errorf("an xz kernel payload needs the xz program (the Go decoder lacks its BCJ filter): %w", err)
		}
	case compression.Zstd, compression.LZMA, compression.Bzip2:
		if len(p) < 4 {
			return nil, errors.New("payload shorter than its size trailer")
		}
		p = p[:len(p)-4]
	}
	r, err := compression.NewReader(ctx, bytes.NewReader(p), compression.Options{XZProgram: true, SingleStream: true})
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(r)
	if err != nil {
		r.Abort()
		return nil, err
	}
	return out, r.Close()
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
	return func(yield func(int) bool) {
		for off := 0; ; {
			i := bytes.Index(b[off:], compression.XZMagic)
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
	xr, err := xzStream(b)
	if err != nil {
		return false
	}
	defer xr.Close()
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

// xzStream reads the xz stream at the start of b with the Go decoder,
// which verifies its checks.
func xzStream(b []byte) (*compression.Reader, error) {
	return compression.NewReader(context.Background(), bytes.NewReader(b), compression.Options{SingleStream: true})
}

// readBuildID decompresses an xz newc cpio archive up to BuildIDPath and
// returns its content, trimmed.
func readBuildID(archive []byte) (string, error) {
	xr, err := xzStream(archive)
	if err != nil {
		return "", fmt.Errorf("open embedded initramfs: %w", err)
	}
	defer xr.Close()
	r := cpio.NewReader(xr)
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s not in the initramfs", BuildIDPath)
		}
		if err != nil {
			return "", fmt.Errorf("read embedded initramfs: %w", err)
		}
		if path.Clean(strings.TrimPrefix(h.Name, "/")) != BuildIDPath {
			continue
		}
		if h.Size > maxBuildID {
			return "", fmt.Errorf("%s in the initramfs is %d bytes, not a build id", BuildIDPath, h.Size)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return "", fmt.Errorf("read %s from the initramfs: %w", BuildIDPath, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
}

// maxBuildID bounds what is read as a build id.
const maxBuildID = 4096
