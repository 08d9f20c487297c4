// Package cpio reads and writes cpio archives in the "newc" (SVR4, 070701)
// format, the one format the Linux kernel unpacks as an initramfs.
//
// Unlike a general archiver it stores exactly the header it is given: device
// numbers of character and block nodes (so /dev/console can be written by an
// unprivileged build), owner, mtime and inode numbers chosen by the caller
// (so archives are reproducible). The Reader returns names as stored, without
// cleaning them, so a checker can reject absolute and ".." names.
package cpio

import (
	"errors"
	"fmt"
	"io/fs"
)

// Mode bits of a newc header (the Linux st_mode layout).
const (
	TypeMask    = 0o170000 // TypeMask selects the file type bits of Header.Mode.
	TypeSocket  = 0o140000 // TypeSocket is a Unix socket.
	TypeSymlink = 0o120000 // TypeSymlink is a symbolic link; the target is the body.
	TypeReg     = 0o100000 // TypeReg is a regular file.
	TypeBlock   = 0o060000 // TypeBlock is a block device node.
	TypeDir     = 0o040000 // TypeDir is a directory.
	TypeChar    = 0o020000 // TypeChar is a character device node.
	TypeFIFO    = 0o010000 // TypeFIFO is a named pipe.

	ModeSetuid = 0o4000 // ModeSetuid is the set-user-id bit.
	ModeSetgid = 0o2000 // ModeSetgid is the set-group-id bit.
	ModeSticky = 0o1000 // ModeSticky is the sticky bit.
	ModePerm   = 0o0777 // ModePerm selects the permission bits.
)

// Trailer is the name of the record that ends every archive.
const Trailer = "TRAILER!!!"

// MaxNameSize bounds the stored name length (including its NUL) the Reader
// accepts; the kernel's own limit is PATH_MAX.
const MaxNameSize = 4096

const (
	magicNewc = "070701"
	magicCRC  = "070702" // same layout with a checksum field; readable, never written
	// headerSize is the magic plus 13 fields of 8 hex digits.
	headerSize = 6 + 13*8
)

var (
	// ErrHeader reports a malformed record header.
	ErrHeader = errors.New("cpio: invalid header")
	// ErrFieldRange reports a header value that does not fit the 32-bit
	// fields of the newc format (a file of 4 GiB or more, a negative mtime).
	ErrFieldRange = errors.New("cpio: value does not fit a newc header field")
	// ErrWriteTooLong reports a Write past the size announced in the header.
	ErrWriteTooLong = errors.New("cpio: write too long")
	// ErrShortBody reports a new header or Close before the previous
	// entry's body was completely written.
	ErrShortBody = errors.New("cpio: entry body shorter than its header size")
	// ErrClosed reports a write to a Writer after Close.
	ErrClosed = errors.New("cpio: write after close")
)

// Header is one newc record. Mode holds the file type and permission bits
// in the Linux layout (TypeReg|0o644). For a symlink the target is Linkname
// and Size is ignored on write (the target is the body).
type Header struct {
	Name     string
	Mode     uint32
	UID      uint32
	GID      uint32
	NLink    uint32
	MTime    int64 // seconds since the epoch
	Size     int64 // body length
	Ino      uint32
	DevMajor uint32 // device holding the file; 0 in reproducible archives
	DevMinor uint32
	// RdevMajor and RdevMinor are the device number of a character or
	// block node (5, 1 for /dev/console).
	RdevMajor uint32
	RdevMinor uint32
	Linkname  string
}

// Type returns the file type bits of h.Mode.
func (h *Header) Type() uint32 { return h.Mode & TypeMask }

// typeLetter returns the ls letter of a file type.
func typeLetter(t uint32) byte {
	switch t {
	case TypeReg:
		return '-'
	case TypeDir:
		return 'd'
	case TypeSymlink:
		return 'l'
	case TypeChar:
		return 'c'
	case TypeBlock:
		return 'b'
	case TypeFIFO:
		return 'p'
	case TypeSocket:
		return 's'
	}
	return '?'
}

// ModeString renders h.Mode the way ls -l and GNU cpio -tv do
// ("crw-------", "-rwsr-xr-x").
func (h *Header) ModeString() string {
	s := []byte("?rwxrwxrwx")
	s[0] = typeLetter(h.Type())
	for i := range 9 {
		if h.Mode&(1<<uint(8-i)) == 0 {
			s[i+1] = '-'
		}
	}
	// Special bits replace the execute letter: lower case when the
	// execute bit is set too.
	special := func(bit uint32, pos int, c byte) {
		if h.Mode&bit == 0 {
			return
		}
		if s[pos] == '-' {
			c -= 'a' - 'A'
		}
		s[pos] = c
	}
	special(ModeSetuid, 3, 's')
	special(ModeSetgid, 6, 's')
	special(ModeSticky, 9, 't')
	return string(s)
}

// ModeOf converts an io/fs mode (from os.Lstat) to the newc mode bits:
// type, permissions and the setuid, setgid and sticky bits.
func ModeOf(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	switch {
	case m.IsDir():
		v |= TypeDir
	case m&fs.ModeSymlink != 0:
		v |= TypeSymlink
	case m&fs.ModeCharDevice != 0:
		v |= TypeChar
	case m&fs.ModeDevice != 0:
		v |= TypeBlock
	case m&fs.ModeNamedPipe != 0:
		v |= TypeFIFO
	case m&fs.ModeSocket != 0:
		v |= TypeSocket
	default:
		v |= TypeReg
	}
	if m&fs.ModeSetuid != 0 {
		v |= ModeSetuid
	}
	if m&fs.ModeSetgid != 0 {
		v |= ModeSetgid
	}
	if m&fs.ModeSticky != 0 {
		v |= ModeSticky
	}
	return v
}

// RecordSize returns the number of archive bytes the record for h takes:
// header, name, body and padding. Summed over all records plus
// RecordSize(&Header{Name: Trailer}) it is the exact archive size, which
// lets a caller size compression blocks before writing.
func RecordSize(h *Header) int64 {
	body := h.Size
	if h.Type() == TypeSymlink {
		body = int64(len(h.Linkname))
	}
	return pad4(headerSize+int64(len(h.Name))+1) + pad4(body)
}

func pad4(n int64) int64 { return (n + 3) &^ 3 }

func rangeError(name, field string, v int64) error {
	return fmt.Errorf("%s: %s %d: %w", name, field, v, ErrFieldRange)
}
