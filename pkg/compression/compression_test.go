package compression

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// compress runs a real compressor (an independent writer) over data.
func compress(t *testing.T, data []byte, tool string, args ...string) []byte {
	t.Helper()
	testutil.RequireTool(t, tool)
	cmd := exec.Command(tool, append(args, "-c")...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	return out
}

func payload(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 200<<10)
	if _, err := rand.Read(b[:100<<10]); err != nil {
		t.Fatal(err)
	}
	copy(b[100<<10:], bytes.Repeat([]byte("lib/modules/6.12.44 "), 5000))
	return b
}

func TestDetect(t *testing.T) {
	tests := map[Format][]byte{
		Gzip: {0x1f, 0x8b, 8}, XZ: {0xfd, '7', 'z', 'X', 'Z', 0}, Zstd: {0x28, 0xb5, 0x2f, 0xfd},
		Bzip2: []byte("BZh9"), LZMA: {0x5d, 0, 0, 0, 4}, Plain: []byte("usr/bin/"),
	}
	for want, head := range tests {
		if got := Detect(head); got != want {
			t.Errorf("Detect(%x) = %s, want %s", head, got, want)
		}
	}
	if got := Detect([]byte("\x7fELF\x02\x01")); got != Plain {
		t.Errorf("an ELF file is %s", got)
	}
}

// TestNewReaderRoundTrip decompresses what the real tools wrote, for every
// format, with the Go decoders and (xz) the xz program.
func TestNewReaderRoundTrip(t *testing.T) {
	data := payload(t)
	tests := []struct {
		name   string
		format Format
		in     func() []byte
		opt    Options
	}{
		{"plain", Plain, func() []byte { return data }, Options{}},
		{"gzip", Gzip, func() []byte { return compress(t, data, "gzip") }, Options{}},
		{"xz go", XZ, func() []byte { return compress(t, data, "xz") }, Options{}},
		{"xz program", XZ, func() []byte { return compress(t, data, "xz") }, Options{XZProgram: true}},
		{"zstd", Zstd, func() []byte { return compress(t, data, "zstd", "-q") }, Options{}},
		{"bzip2", Bzip2, func() []byte { return compress(t, data, "bzip2") }, Options{}},
		{"lzma", LZMA, func() []byte { return compress(t, data, "xz", "--format=lzma") }, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(context.Background(), bytes.NewReader(tt.in()), tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if r.Format != tt.format || !bytes.Equal(got, data) {
				t.Errorf("format %s, %d bytes; want %s, the %d bytes compressed", r.Format, len(got), tt.format, len(data))
			}
		})
	}
}

// TestSingleStream reads a stream other data follows, as the initramfs
// inside a kernel is: only the first stream's content comes out.
func TestSingleStream(t *testing.T) {
	data := payload(t)
	trailer := []byte("the rest of the kernel, not xz")
	for _, tt := range []struct {
		name string
		in   []byte
		opt  Options
	}{
		{"xz go", compress(t, data, "xz"), Options{SingleStream: true}},
		{"xz program", compress(t, data, "xz"), Options{SingleStream: true, XZProgram: true}},
		{"gzip", compress(t, data, "gzip"), Options{SingleStream: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := append(append([]byte{}, tt.in...), append(tt.in, trailer...)...) // two streams, then other data
			r, err := NewReader(context.Background(), bytes.NewReader(in), tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r) // the Go xz decoder complains about the data after the stream
			r.Close()
			if !bytes.Equal(got, data) {
				t.Errorf("got %d bytes, want the first stream's %d", len(got), len(data))
			}
		})
	}
}

// TestXZProgramReportsTruncation: a truncated stream is an error at Close
// even when the consumer stopped reading before the damage.
func TestXZProgramReportsTruncation(t *testing.T) {
	full := compress(t, payload(t), "xz")
	r, err := NewReader(context.Background(), bytes.NewReader(full[:len(full)-20]), Options{XZProgram: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err == nil || !strings.Contains(err.Error(), "xz -dc") {
		t.Errorf("Close of a truncated stream: %v", err)
	}
	r, err = NewReader(context.Background(), bytes.NewReader(full), Options{XZProgram: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Abort() // stops the program without reading the rest; must not hang
}
