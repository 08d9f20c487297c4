// Package archive extracts tar archives (plain, gzip, xz, zstd, bzip2,
// recognised by their magic bytes) safely and unprivileged: no entry is ever
// written outside the root or through a symlink, device nodes are skipped,
// and modes, symlinks, hard links and modification times are kept.
//
// The rules, each enforced per entry before anything is written:
//   - names and hard-link targets are relative and have no ".." component;
//   - no entry's parent path traverses a symlink, whether the archive made
//     it or it was there before (the simplest rule that makes "symlink to
//     /etc, then etc/passwd through it" and every symlink chain harmless);
//   - the entry's own path is never followed: an existing file or symlink
//     there is replaced, an existing directory is never replaced by a
//     non-directory;
//   - a path appears once (a directory may repeat);
//   - a relative symlink may not climb above the root; absolute symlink
//     targets are kept, since root filesystems use them (/bin/ls ->
//     /bin/busybox) and they are never followed here;
//   - hard links point at a regular file already extracted inside the root.
//
// Consumers of an extracted tree must resolve its symlinks relative to the
// root (as a chroot would), never on the host.
package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/compression"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
)

// ErrUnsafe is wrapped by the error for an entry that would escape the root,
// write through a symlink or otherwise break the extraction rules.
var ErrUnsafe = errors.New("unsafe archive entry")

// ErrLimit is wrapped by the error for an archive that holds more entries or
// more bytes than the extraction allows (Options.MaxEntries, MaxBytes).
var ErrLimit = errors.New("archive exceeds the extraction limit")

// Default extraction limits. The largest archive the build reads is a
// kernel source tarball: linux-source-6.1 is 1.3 GiB in 83,731 entries,
// linux-6.12 about 1.5 GiB in about 90,000; the defaults leave room for
// kernels to grow while a few-hundred-byte archive (sparse files expand to
// their full size) cannot fill the disk.
const (
	DefaultMaxBytes   = 4 << 30
	DefaultMaxEntries = 300_000
)

// Options tune an extraction. The zero value extracts everything as is.
type Options struct {
	// StripComponents drops that many leading path components from each
	// entry name (and hard-link target); entries with no more components
	// are skipped, like tar --strip-components.
	StripComponents int
	// Log receives the summary (entries, skipped device nodes); nil is silent.
	Log logrus.FieldLogger
	// Chown applies the archive's uid/gid; it takes effect only when running
	// as root. Otherwise everything belongs to the caller.
	Chown bool
	// Progress, when set, reports ExtractFile's progress through the
	// compressed file; nil shows nothing.
	Progress *progress.Options
	// MaxBytes bounds the total size of the files written (a sparse file
	// counts at its full size); 0 means DefaultMaxBytes, negative no limit.
	MaxBytes int64
	// MaxEntries bounds the number of entries; 0 means DefaultMaxEntries,
	// negative no limit.
	MaxEntries int

	// pureGo forces the Go xz decoder even when xz is on PATH (tests).
	pureGo bool
}

// ExtractFile extracts the archive at path into root, creating root if
// needed. The compression is detected from the file's first bytes. On error
// root may hold part of the archive: extract into a fresh directory and
// rename it into place when the result must be all or nothing.
func ExtractFile(ctx context.Context, path, root string, opt Options) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	defer f.Close()
	var r io.Reader = f
	if opt.Progress != nil {
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("extract %s: %w", path, err)
		}
		bar := progress.Start("extract "+filepath.Base(path), st.Size(), progress.Bytes, *opt.Progress)
		defer bar.Finish()
		r = io.TeeReader(f, bar.Writer())
	}
	if err := extract(ctx, r, root, opt); err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	return nil
}

// ExtractTar extracts the tar stream r (plain or compressed, detected from
// its first bytes) into root, creating root if needed.
func ExtractTar(ctx context.Context, r io.Reader, root string, opt Options) error {
	if err := extract(ctx, r, root, opt); err != nil {
		return fmt.Errorf("extract into %s: %w", root, err)
	}
	return nil
}

func extract(ctx context.Context, r io.Reader, root string, opt Options) error {
	stream, err := compression.NewReader(ctx, r, compression.Options{XZProgram: !opt.pureGo})
	if err != nil {
		return err
	}
	x, err := newExtractor(root, opt)
	if err != nil {
		stream.Close()
		return err
	}
	if err := x.run(ctx, stream); err != nil {
		stream.Abort()
		return err
	}
	// Read to the end so the decompressor checks its trailer (CRC, size):
	// a truncated download must not pass because the tar reader stopped
	// at the end-of-archive marker.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		stream.Close()
		return fmt.Errorf("after the last entry: %w", err)
	}
	if err := stream.Close(); err != nil {
		return err
	}
	x.log.WithFields(logrus.Fields{"root": root, "entries": x.entries, "devices_skipped": x.devices}).
		Debug("extracted archive")
	if x.devices > 0 {
		x.log.Infof("extract into %s: skipped %d device nodes", root, x.devices)
	}
	return nil
}
