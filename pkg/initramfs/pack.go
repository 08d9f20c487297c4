package initramfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/cpio"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
)

// Pack writes srcDir as an xz-compressed newc cpio archive to outFile (see
// the package doc for what makes it reproducible). The archive is written
// to a temporary file beside outFile and renamed only when complete, so a
// failed or interrupted Pack never leaves a partial archive at outFile.
func Pack(ctx context.Context, srcDir, outFile string, opt Options) error {
	_, err := PackStats(ctx, srcDir, outFile, opt)
	return err
}

// PackStats is Pack that also returns what it wrote and which encoder ran.
func PackStats(ctx context.Context, srcDir, outFile string, opt Options) (Stats, error) {
	c, xzPath, err := backend(opt.Compression)
	if err != nil {
		return Stats{}, err
	}
	if c == CompressionGo && opt.Compression != CompressionGo {
		logging.OrDiscard(opt.Log).Warn("initramfs: xz binary not found, using the Go xz encoder (output about 40% larger)")
	}
	items, err := plan(ctx, srcDir, opt)
	if err != nil {
		return Stats{}, err
	}
	j := &job{items: items, backend: c, xzPath: xzPath, opt: opt, size: cpio.RecordSize(&cpio.Header{Name: cpio.Trailer})}
	for _, it := range items {
		j.size += cpio.RecordSize(&it.hdr)
	}
	logging.OrDiscard(opt.Log).Infof("initramfs: packing %s (%d entries, %d bytes) into %s with the %s encoder", srcDir, len(items), j.size, outFile, c)
	out, err := fsutil.Create(outFile, 0o644)
	if err != nil {
		return Stats{}, err
	}
	defer out.Cleanup()
	if err := j.write(ctx, out.File); err != nil {
		return Stats{}, err
	}
	if err := out.Commit(); err != nil {
		return Stats{}, err
	}
	fi, err := os.Stat(outFile)
	if err != nil {
		return Stats{}, fmt.Errorf("pack %s: %w", outFile, err)
	}
	st := Stats{Backend: c, Entries: len(items), Uncompressed: j.size, Compressed: fi.Size()}
	if c == CompressionXZ {
		_, n, _ := layout(j.size, opt)
		st.Blocks = int(n)
	}
	logging.OrDiscard(opt.Log).Infof("initramfs: wrote %s: %d bytes (%.1f%% of %d)", outFile, st.Compressed,
		100*float64(st.Compressed)/float64(st.Uncompressed), st.Uncompressed)
	return st, nil
}

// job is one planned archive on its way to the encoder.
type job struct {
	items   []*item
	backend Compression
	xzPath  string
	size    int64 // exact cpio size, known before writing
	opt     Options
}

// write streams the planned entries through the encoder into f.
func (j *job) write(ctx context.Context, f *os.File) (err error) {
	enc, err := j.encoder(ctx, f)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			enc.Abort()
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				// xz killed by the context: say why, not "signal: killed"
				err = fmt.Errorf("%w: %w", ctx.Err(), err)
			}
		}
	}()
	var sink io.Writer = enc
	if j.opt.Progress != nil {
		bar := progress.Start("initramfs "+string(j.backend), j.size, progress.Bytes, *j.opt.Progress)
		defer bar.Finish()
		sink = io.MultiWriter(enc, bar.Writer())
	}
	bw := bufio.NewWriterSize(sink, 1<<20)
	cw := cpio.NewWriter(bw)
	for _, it := range j.items {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := cw.WriteHeader(&it.hdr); err != nil {
			return fmt.Errorf("pack %s: %w", it.hdr.Name, err)
		}
		if it.src != "" {
			if err := copyBody(cw, it.src, it.hdr.Size); err != nil {
				return err
			}
		}
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	return enc.Close()
}

// copyBody copies exactly size bytes of path; a file that shrank or grew
// since it was planned would corrupt the archive's sizes, so it fails.
func copyBody(w io.Writer, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pack %s: %w", path, err)
	}
	defer f.Close()
	n, err := io.CopyN(w, f, size)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("pack %s: %d of %d bytes: %w", path, n, size, ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("pack %s: %w", path, err)
	}
	if m, _ := f.Read(make([]byte, 1)); m > 0 {
		return fmt.Errorf("pack %s: longer than %d bytes: %w", path, size, ErrChanged)
	}
	return nil
}
