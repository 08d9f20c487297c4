package flist

import "io/fs"

// FileType is the S_IFMT part of an inode's mode.
type FileType uint32

// File types, with the Linux S_IFMT values rfs stores in inode.mode.
const (
	TypeMask    FileType = 0o170000
	TypeSocket  FileType = 0o140000
	TypeSymlink FileType = 0o120000
	TypeRegular FileType = 0o100000
	TypeBlock   FileType = 0o060000
	TypeDir     FileType = 0o040000
	TypeChar    FileType = 0o020000
	TypeFIFO    FileType = 0o010000
)

// String is the type's name as `rfs flist inspect` prints it.
func (t FileType) String() string {
	switch t {
	case TypeDir:
		return "Directory"
	case TypeRegular:
		return "Regular File"
	case TypeSymlink:
		return "Symbolic Link"
	case TypeBlock:
		return "Block Device"
	case TypeChar:
		return "Character Device"
	case TypeSocket:
		return "Socket"
	case TypeFIFO:
		return "FIFO"
	default:
		return "Unknown"
	}
}

// Inode is one row of the inode table joined with its extra data.
type Inode struct {
	Ino    int64  // 1 for the root
	Parent int64  // 0 for the root
	Name   string // base name; "/" for the root
	Size   uint64 // st_size: file length, symlink target length, 4096-ish for dirs
	UID    uint32
	GID    uint32
	Mode   uint32 // full st_mode, type bits included
	Rdev   uint64 // raw st_rdev of device nodes
	Ctime  int64  // status change time, seconds
	Mtime  int64  // modification time, seconds
	Data   []byte // extra.data: the symlink target; nil when there is no extra row
}

// Type is the inode's file type.
func (in *Inode) Type() FileType { return FileType(in.Mode) & TypeMask }

// Perm is the mode without the type bits (permissions plus setuid, setgid
// and sticky), as rfs's "Permissions" line shows it.
func (in *Inode) Perm() uint32 { return in.Mode &^ uint32(TypeMask) }

// FileMode converts the inode's mode to an io/fs FileMode.
func (in *Inode) FileMode() fs.FileMode {
	m := fs.FileMode(in.Mode & 0o777)
	if in.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if in.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if in.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch in.Type() {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeBlock:
		m |= fs.ModeDevice
	case TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeSocket:
		m |= fs.ModeSocket
	case TypeFIFO:
		m |= fs.ModeNamedPipe
	}
	return m
}

// blocksFor is the number of blocks a file of size bytes has.
func blocksFor(size uint64) uint64 { return (size + BlockSize - 1) / BlockSize }
