package cpio

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// MaxLinkSize bounds the symlink target the Reader accepts (PATH_MAX).
const MaxLinkSize = 4096

// Reader reads a newc archive from a stream (a decompressor, a pipe): it
// never seeks. Next returns each header in turn; Read reads its body.
type Reader struct {
	r         *bufio.Reader
	name      string
	remaining int64 // unread body bytes of the current entry
	padding   int64
	offset    int64 // archive bytes consumed, for error messages
	err       error
}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Offset returns the number of archive bytes consumed so far; after Next
// returned io.EOF it is the archive's size up to the end of the trailer.
func (r *Reader) Offset() int64 { return r.offset }

// Next skips what is left of the current entry and returns the next
// header. It returns io.EOF at the trailer record, and io.ErrUnexpectedEOF
// (wrapped) when the stream ends before it. For a symlink the target is read
// into Linkname. Names are returned exactly as stored.
func (r *Reader) Next() (*Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	h, err := r.next()
	if err != nil {
		r.err = err
	}
	return h, err
}

func (r *Reader) next() (*Header, error) {
	if err := r.skip(r.remaining + r.padding); err != nil {
		return nil, fmt.Errorf("skip body of %s: %w", r.name, err)
	}
	start := r.offset
	var raw [headerSize]byte
	if err := r.readFull(raw[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // a cpio stream must end with its trailer
		}
		return nil, fmt.Errorf("header at offset %d: %w", start, err)
	}
	if m := string(raw[:6]); m != magicNewc && m != magicCRC {
		return nil, fmt.Errorf("offset %d: magic %q is not newc (070701): %w", start, m, ErrHeader)
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(raw[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("offset %d: field %d: %w", start, i, ErrHeader)
		}
		f[i] = uint32(v)
	}
	h := &Header{
		Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], NLink: f[4], MTime: int64(f[5]),
		Size: int64(f[6]), DevMajor: f[7], DevMinor: f[8], RdevMajor: f[9], RdevMinor: f[10],
	}
	nameSize := int64(f[11])
	if nameSize < 1 || nameSize > MaxNameSize {
		return nil, fmt.Errorf("offset %d: name size %d: %w", start, nameSize, ErrHeader)
	}
	name := make([]byte, pad4(headerSize+nameSize)-headerSize)
	if err := r.readFull(name); err != nil {
		return nil, fmt.Errorf("name at offset %d: %w", start, noEOF(err))
	}
	if name[nameSize-1] != 0 {
		return nil, fmt.Errorf("offset %d: name not NUL-terminated: %w", start, ErrHeader)
	}
	h.Name = string(name[:nameSize-1])
	if h.Name == Trailer {
		return nil, io.EOF
	}
	r.name, r.remaining, r.padding = h.Name, h.Size, pad4(h.Size)-h.Size
	if h.Type() == TypeSymlink {
		if h.Size > MaxLinkSize {
			return nil, fmt.Errorf("%s: symlink target of %d bytes: %w", h.Name, h.Size, ErrHeader)
		}
		target := make([]byte, h.Size)
		if _, err := io.ReadFull(r, target); err != nil {
			return nil, fmt.Errorf("symlink target of %s: %w", h.Name, noEOF(err))
		}
		h.Linkname = string(target)
	}
	return h, nil
}

// Read reads the body of the current entry; it returns io.EOF at its end.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.r.Read(p)
	r.remaining -= int64(n)
	r.offset += int64(n)
	if err == io.EOF && r.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		r.err = fmt.Errorf("body of %s: %w", r.name, err)
		return n, r.err
	}
	return n, nil
}

func (r *Reader) readFull(b []byte) error {
	n, err := io.ReadFull(r.r, b)
	r.offset += int64(n)
	return err
}

func (r *Reader) skip(n int64) error {
	d, err := r.r.Discard(int(n))
	r.offset += int64(d)
	r.remaining, r.padding = 0, 0
	return noEOF(err)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
