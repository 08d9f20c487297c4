package flist

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
)

// A reuse index is what lets a pack with PackOptions.Time skip unchanged
// files. Such an flist records the fixed time, not the files' own, so it
// cannot tell a changed file from an unchanged one; the index, kept beside
// the build's state (never in the flist or next to it in dist), records
// for every regular file of the last pack its path in the flist, its
// identity on disk (device, inode, size, mode, mtime and ctime in
// nanoseconds) and the blocks its content gave. The index is written
// atomically after the flist is committed, ends with the sha256 of what
// precedes it, and is ignored (everything is read again) when it is
// missing, truncated, corrupt or of another format.

// reuseFormat is the first field of every index.
const reuseFormat = "zosbuilder-flist-reuse/1"

// maxReuseIndex bounds what is read of an index (a tree of a million
// files of one block each is about 150 MB).
const maxReuseIndex = 512 << 20

// fileStamp is what says a file did not change since it was read: the
// same values mean the same content, provided the times are older than
// the read (see reusable).
type fileStamp struct {
	Dev, Ino, Size uint64
	Mode           uint32
	Mtime, Ctime   int64
}

// diskStamp is the stamp of a file as the walk stat'ed it, times in
// nanoseconds.
func diskStamp(st *unix.Stat_t) fileStamp {
	return fileStamp{Dev: st.Dev, Ino: st.Ino, Size: uint64(st.Size), Mode: st.Mode,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
}

// recordStamp is the stamp of a file as an flist records it (Unix seconds,
// no identity): what reuse from a previous flist compares.
func recordStamp(in *Inode) fileStamp {
	return fileStamp{Size: in.Size, Mode: in.Mode, Mtime: in.Mtime, Ctime: in.Ctime}
}

// reuseIndex is the content of an index file.
type reuseIndex struct {
	Format string
	// Walk is when the pack's walk started, in nanoseconds.
	Walk  int64
	Files []reuseEntry
}

type reuseEntry struct {
	Path   string // in the flist
	Stamp  fileStamp
	Blocks []Block
}

// loadReuseIndex reads the index at path into p.prev. Anything wrong with
// it just means no reuse.
func (p *packer) loadReuseIndex(path string) {
	idx, err := readReuseIndex(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.log.WithError(err).Warn("reuse index ignored; packing every file")
		}
		return
	}
	prev := make(map[string]prevFile, len(idx.Files))
	for _, f := range idx.Files {
		prev[f.Path] = prevFile{stamp: f.Stamp, blocks: f.Blocks}
	}
	// Times must be older than the second the walk started in, as for an
	// flist's record: a change within that second could leave both equal.
	second := int64(1e9)
	p.prev, p.prevWalk = prev, idx.Walk/second*second
}

func readReuseIndex(path string) (*reuseIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxReuseIndex+1))
	if err != nil {
		return nil, fmt.Errorf("reuse index %s: %w", path, err)
	}
	if len(b) > maxReuseIndex {
		return nil, fmt.Errorf("reuse index %s: larger than %d bytes", path, maxReuseIndex)
	}
	if len(b) < sha256.Size {
		return nil, fmt.Errorf("reuse index %s: truncated", path)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("reuse index %s: checksum mismatch (truncated or damaged)", path)
	}
	var idx reuseIndex
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(&idx); err != nil {
		return nil, fmt.Errorf("reuse index %s: %w", path, err)
	}
	if idx.Format != reuseFormat {
		return nil, fmt.Errorf("reuse index %s: format %q, want %q", path, idx.Format, reuseFormat)
	}
	return &idx, nil
}

// writeReuseIndex records the files of a successful pack, whose walk
// started at walk, at path.
func writeReuseIndex(path string, walk int64, files []*fileState) error {
	idx := reuseIndex{Format: reuseFormat, Walk: walk, Files: make([]reuseEntry, 0, len(files))}
	for _, f := range files {
		idx.Files = append(idx.Files, reuseEntry{Path: f.job.fpath, Stamp: f.job.stamp, Blocks: f.blocks})
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&idx); err != nil {
		return fmt.Errorf("reuse index %s: %w", path, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	return fsutil.WriteFile(path, buf.Bytes(), 0o644)
}
