package initramfs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/threefoldtech/zosbuilder/pkg/compression"
	"github.com/threefoldtech/zosbuilder/pkg/cpio"
)

// checkNames maps xz check IDs to names (xz file format 2.1.1.2).
var checkNames = map[byte]string{0: "None", 1: "CRC32", 4: "CRC64", 10: "SHA-256"}

// walkFunc is called for every entry with a reader of its body.
type walkFunc = func(h *cpio.Header, body io.Reader) error

// archiveInfo is what reading a whole archive tells about its container.
type archiveInfo struct {
	compressed   int64
	uncompressed int64
	check        string // xz check name; "" for an uncompressed cpio
}

// Walk calls fn for every entry of the archive at path, an xz-compressed
// (or plain) newc cpio, with a reader of its body; bodies fn leaves unread
// are skipped. The whole archive is read, so corruption anywhere is an
// error.
func Walk(ctx context.Context, path string, fn func(h *cpio.Header, body io.Reader) error) error {
	_, err := readArchive(ctx, path, fn)
	return err
}

// WalkStream is Walk for an archive at the start of r that other data may
// follow, such as the initramfs inside a kernel image: it reads one xz
// stream, or a plain cpio up to its trailer, and nothing after it.
func WalkStream(ctx context.Context, r io.Reader, fn func(h *cpio.Header, body io.Reader) error) error {
	_, err := readStream(ctx, bufio.NewReaderSize(r, 1<<20), true, fn)
	return err
}

// readArchive opens path, an xz-compressed (or plain) newc cpio, and calls
// fn for every entry with a reader of its body; bodies fn leaves unread are
// read and discarded, so a corrupt stream always surfaces as an error.
func readArchive(ctx context.Context, path string, fn walkFunc) (archiveInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return archiveInfo{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return archiveInfo{}, err
	}
	info, err := readStream(ctx, bufio.NewReaderSize(f, 1<<20), false, fn)
	info.compressed = fi.Size()
	return info, err
}

// readStream reads the archive in br; single stops at the end of the first
// xz stream (or the cpio trailer) instead of reading br to its end.
func readStream(ctx context.Context, br *bufio.Reader, single bool, fn walkFunc) (archiveInfo, error) {
	var info archiveInfo
	// The two stream-flag bytes follow the xz magic, the second holding
	// the integrity check ID.
	head, _ := br.Peek(len(compression.XZMagic) + 2)
	var src io.Reader = br
	plain := false
	switch {
	case compression.Detect(head) == compression.XZ && len(head) < len(compression.XZMagic)+2:
		// The stream flags are missing (found by FuzzCheck).
		return info, fmt.Errorf("xz: stream header truncated after %d bytes", len(head))
	case compression.Detect(head) == compression.XZ:
		info.check = checkNames[head[7]&0x0f]
		if info.check == "" {
			info.check = fmt.Sprintf("unknown (%d)", head[7]&0x0f)
		}
		// The Go decoder: it verifies every check value.
		xr, err := compression.NewReader(ctx, br, compression.Options{SingleStream: single})
		if err != nil {
			return info, err
		}
		defer xr.Close()
		src = xr
	case bytes.HasPrefix(head, []byte("0707")):
		plain = true // an uncompressed cpio, which the kernel accepts too
	default:
		return info, fmt.Errorf("neither an xz stream nor a newc cpio (starts with % x)", head)
	}
	counted := &countReader{r: src}
	r := cpio.NewReader(counted)
	for {
		if err := ctx.Err(); err != nil {
			return info, err
		}
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return info, err
		}
		if err := fn(h, r); err != nil {
			return info, err
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return info, err
		}
	}
	if single && plain {
		return info, nil // a plain cpio: what follows the trailer is not ours
	}
	// Reading to the end makes the xz reader verify the stream's index
	// and checks after the cpio trailer. A single stream followed by other
	// data ends with the reader's complaint about that data, which it
	// makes only after the stream's footer checked out.
	if _, err := io.Copy(io.Discard, counted); err != nil && !(single && err.Error() == "xz: unexpected data after stream") {
		return info, fmt.Errorf("after the cpio trailer: %w", err)
	}
	info.uncompressed = counted.n
	return info, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
