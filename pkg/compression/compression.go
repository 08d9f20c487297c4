// Package compression recognises a compressed stream by its magic bytes,
// never by a file name, and decompresses it. It is the one place for the
// formats the build meets: downloaded tarballs (gzip, xz, zstd, bzip2),
// kernel payloads (those and lzma), compressed modules, initramfs archives.
package compression

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// Format is a compression format recognised by its magic bytes.
type Format string

// Formats that Detect recognises.
const (
	Plain Format = "plain"
	Gzip  Format = "gzip"
	XZ    Format = "xz"
	Zstd  Format = "zstd"
	Bzip2 Format = "bzip2"
	// LZMA is the legacy .lzma format (a 13-byte header, no magic of its
	// own), as CONFIG_KERNEL_LZMA writes it: recognised by the usual
	// properties byte and a dictionary size of whole 64 KiB units.
	LZMA Format = "lzma"
)

// MagicLen is how many leading bytes Detect needs to see.
const MagicLen = 6

// XZMagic starts every xz stream; two stream-flag bytes follow.
var XZMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

var magics = []struct {
	magic  []byte
	format Format
}{
	{[]byte{0x1f, 0x8b}, Gzip},
	{XZMagic, XZ},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd},
	{[]byte("BZh"), Bzip2},
	{[]byte{0x5d, 0, 0}, LZMA},
}

// Detect returns the format of a stream starting with head (MagicLen bytes
// are enough). Anything unrecognised is Plain: the reader of the
// decompressed data checks it.
func Detect(head []byte) Format {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.format
		}
	}
	return Plain
}

// Options choose how NewReader decompresses.
type Options struct {
	// XZProgram decompresses xz with the xz program when it is on PATH:
	// about three times faster than the Go decoder on a kernel source, and
	// it knows the BCJ filters of a kernel's payload, which the Go decoder
	// does not. Without the program the Go decoder is used.
	XZProgram bool
	// SingleStream stops at the end of the first xz stream or gzip member,
	// for a stream other data follows (the initramfs inside a kernel).
	SingleStream bool
}

// Reader is a decompressed stream.
type Reader struct {
	io.Reader
	// Format is what the stream was compressed with.
	Format Format
	close  func() error
	abort  func()
}

// Close releases the decoder. For the xz program it drains the output and
// waits for it, and reports its failure: a truncated stream is an error
// even when the reader stopped before the damage.
func (r *Reader) Close() error {
	if r.close == nil {
		return nil
	}
	return r.close()
}

// Abort stops decompressing without reading the rest of the input, after a
// failure elsewhere.
func (r *Reader) Abort() {
	if r.abort != nil {
		r.abort()
		return
	}
	_ = r.Close()
}

// NewReader returns the decompressed stream of r, whose format it detects.
// A Plain stream is returned as it is.
func NewReader(ctx context.Context, r io.Reader, opt Options) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(MagicLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	f := Detect(head)
	out := &Reader{Format: f}
	switch f {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		zr.Multistream(!opt.SingleStream)
		out.Reader, out.close = zr, zr.Close
	case XZ:
		if path, err := exec.LookPath("xz"); err == nil && opt.XZProgram {
			return startXZ(ctx, path, br, opt.SingleStream)
		}
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		xr.SingleStream = opt.SingleStream
		out.Reader = xr
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		out.Reader, out.close = zr, func() error { zr.Close(); return nil }
	case Bzip2:
		out.Reader = bzip2.NewReader(br)
	case LZMA:
		lr, err := lzma.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("lzma: %w", err)
		}
		out.Reader = lr
	default:
		out.Reader = br
	}
	return out, nil
}

// startXZ runs `xz -dc` reading from r.
func startXZ(ctx context.Context, path string, r io.Reader, single bool) (*Reader, error) {
	ctx, cancel := context.WithCancel(ctx)
	args := []string{"-dc"}
	if single {
		args = append(args, "--single-stream")
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start xz: %w", err)
	}
	return &Reader{
		Reader: stdout,
		Format: XZ,
		close: func() error {
			// Drain what the consumer left (a tar's padding after its
			// end-of-archive marker) so xz can finish and report a
			// damaged tail.
			_, drainErr := io.Copy(io.Discard, stdout)
			err := cmd.Wait()
			cancel()
			if err != nil {
				return fmt.Errorf("xz -dc: %w: %s", err, strings.TrimSpace(stderr.String()))
			}
			return drainErr
		},
		abort: func() {
			cancel()
			_ = cmd.Wait()
		},
	}, nil
}
