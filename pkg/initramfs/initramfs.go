// Package initramfs packs a root tree into the xz-compressed newc cpio
// archive the Linux kernel unpacks at boot, checks such archives and lists
// them.
//
// Archives are reproducible: entries in a fixed order (parents first), owner
// 0:0, inode numbers assigned in that order, and every mtime set to
// SOURCE_DATE_EPOCH when given. Device nodes (/dev/console, /dev/null) are
// written from Options.Devices, so the build needs no root. The xz stream
// uses the CRC32 check, the only one the kernel's decoder accepts besides
// none.
package initramfs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/cpio"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
)

// Compression selects the xz encoder (config key INITRAMFS_COMPRESSION).
type Compression string

const (
	// CompressionAuto uses the xz binary when it is in PATH and the Go
	// encoder otherwise. The empty string means the same.
	CompressionAuto Compression = "auto"
	// CompressionXZ runs the xz binary (multi-threaded, smallest output);
	// it is an error when xz is missing.
	CompressionXZ Compression = "xz"
	// CompressionGo uses github.com/ulikunitz/xz in process: always
	// available, about 40% larger output.
	CompressionGo Compression = "go"
)

var (
	// ErrCompression reports an unknown compression name.
	ErrCompression = errors.New("unknown initramfs compression (want auto, xz or go)")
	// ErrNoXZ reports CompressionXZ without an xz binary in PATH.
	ErrNoXZ = errors.New("xz binary not found in PATH")
	// ErrChanged reports a file whose size changed while it was packed.
	ErrChanged = errors.New("file changed while packing")
	// ErrInvalid reports an archive that fails Check.
	ErrInvalid = errors.New("initramfs archive is invalid")
	// ErrTooLarge reports an archive larger than CheckOptions.MaxSize.
	ErrTooLarge = errors.New("initramfs archive exceeds the maximum size")
)

// ParseCompression validates a compression name; "" means CompressionAuto.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(strings.ToLower(strings.TrimSpace(s))); c {
	case "", CompressionAuto:
		return CompressionAuto, nil
	case CompressionXZ, CompressionGo:
		return c, nil
	}
	return "", fmt.Errorf("%q: %w", s, ErrCompression)
}

// ParseEpoch parses a SOURCE_DATE_EPOCH value (decimal seconds); "" means
// unset and returns nil.
func ParseEpoch(s string) (*int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH %q: want non-negative decimal seconds", s)
	}
	return &v, nil
}

// Device is a device node written into the archive without mknod.
type Device struct {
	Name  string // path inside the archive, without a leading slash
	Block bool   // block device; false means character device
	Perm  uint32 // permission bits
	Major uint32
	Minor uint32
}

// DefaultDevices returns the nodes the kernel and /init need before
// devtmpfs is mounted: /dev/console (5,1), which the kernel opens as init's
// stdin/stdout/stderr, and /dev/null (1,3).
func DefaultDevices() []Device {
	return []Device{
		{Name: "dev/console", Perm: 0o600, Major: 5, Minor: 1},
		{Name: "dev/null", Perm: 0o666, Major: 1, Minor: 3},
	}
}

func (d Device) header() cpio.Header {
	typ := uint32(cpio.TypeChar)
	if d.Block {
		typ = cpio.TypeBlock
	}
	return cpio.Header{Name: d.Name, Mode: typ | d.Perm&0o7777, RdevMajor: d.Major, RdevMinor: d.Minor}
}

// Options tune Pack. The zero value packs with the best available encoder,
// real mtimes and DefaultDevices.
type Options struct {
	// Compression picks the encoder (INITRAMFS_COMPRESSION).
	Compression Compression
	// SourceDateEpoch, when set, is the mtime of every entry
	// (SOURCE_DATE_EPOCH); nil keeps the files' own mtimes.
	SourceDateEpoch *int64
	// Devices are added to the archive, replacing entries of the same
	// name; nil means DefaultDevices().
	Devices []Device
	// Blocks is the number of xz blocks the archive is split into so that
	// as many threads can compress in parallel (xz binary only). More
	// blocks are faster and slightly larger. 0 chooses by size: an even
	// number of blocks of at most 100 MiB (2 for a typical image). The
	// output depends on Blocks, never on Threads.
	Blocks int
	// Threads caps the xz threads; 0 uses every CPU.
	Threads int
	// Log receives the backend choice and a summary; nil is silent.
	Log logrus.FieldLogger
	// Progress, when set, shows a progress bar (terminal) or a line every
	// 10 s (log file) while the archive is compressed; nil shows nothing.
	Progress *progress.Options
}

// Stats describes an archive Pack wrote.
type Stats struct {
	Backend      Compression // the encoder that ran: xz or go
	Entries      int         // cpio records, trailer excluded
	Uncompressed int64       // cpio bytes
	Compressed   int64       // bytes of the output file
	Blocks       int         // xz blocks written by the xz binary; 0 for the Go encoder
}
