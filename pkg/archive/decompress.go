package archive

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
)

var magics = []struct {
	magic  []byte
	format Format
}{
	{[]byte{0x1f, 0x8b}, Gzip},
	{[]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, XZ},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd},
	{[]byte("BZh"), Bzip2},
}

// Detect returns the compression format of a stream starting with head.
// Anything unrecognised is Plain (an uncompressed tar is checked by the tar
// reader).
func Detect(head []byte) Format {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.format
		}
	}
	return Plain
}

// decompressor turns a possibly compressed stream into a plain one. When
// external is true and the xz program is on PATH it decompresses xz, which
// is about three times faster than the pure-Go decoder on the kernel source.
type decompressor struct {
	external bool
}

// open returns the decompressed stream of r. Closing it releases the
// decoder; for xz run as a program it also waits for it and reports its
// failure, so a truncated file is an error even when the tar reader stopped
// at the end-of-archive marker before the damage.
func (d decompressor) open(ctx context.Context, r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(8)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch Detect(head) {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	case XZ:
		if path, err := exec.LookPath("xz"); err == nil && d.external {
			return startXZ(ctx, path, br)
		}
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return io.NopCloser(xr), nil
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), nil
	}
	return io.NopCloser(br), nil
}

// xzProcess is the output of `xz -dc` reading from a Go reader.
type xzProcess struct {
	io.Reader
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stderr *bytes.Buffer
}

func startXZ(ctx context.Context, path string, r io.Reader) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, path, "-dc")
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start xz: %w", err)
	}
	return &xzProcess{Reader: out, cmd: cmd, cancel: cancel, stderr: &stderr}, nil
}

// Close drains what the tar reader left (the padding after the
// end-of-archive marker) so xz can finish and report a damaged tail.
func (p *xzProcess) Close() error {
	_, drainErr := io.Copy(io.Discard, p.Reader)
	err := p.cmd.Wait()
	p.cancel()
	if err != nil {
		return fmt.Errorf("xz -dc: %w: %s", err, strings.TrimSpace(p.stderr.String()))
	}
	return drainErr
}

// abort stops the process without waiting for the rest of the input.
func (p *xzProcess) abort() {
	p.cancel()
	_ = p.cmd.Wait()
}
