package initramfs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/threefoldtech/zosbuilder/pkg/cpio"
)

// List writes an `ls -l`-style line for every entry of the archive at path
// (xz-compressed or plain newc cpio): mode, link count, owner, size or
// device number, mtime (UTC), name as stored and symlink target.
func List(ctx context.Context, w io.Writer, path string) error {
	bw := bufio.NewWriter(w)
	_, err := readArchive(ctx, path, func(h *cpio.Header, _ io.Reader) error {
		_, err := io.WriteString(bw, listLine(h))
		return err
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("list %s: %w", path, err)
	}
	return nil
}

func listLine(h *cpio.Header) string {
	size := strconv.FormatInt(h.Size, 10)
	if t := h.Type(); t == cpio.TypeChar || t == cpio.TypeBlock {
		size = fmt.Sprintf("%d, %d", h.RdevMajor, h.RdevMinor)
	}
	name := h.Name
	if h.Type() == cpio.TypeSymlink {
		name += " -> " + h.Linkname
	}
	mtime := time.Unix(h.MTime, 0).UTC().Format("2006-01-02 15:04")
	return fmt.Sprintf("%s %3d %5d %5d %10s %s %s\n", h.ModeString(), h.NLink, h.UID, h.GID, size, mtime, name)
}
