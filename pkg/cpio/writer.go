package cpio

import (
	"fmt"
	"io"
	"math"
)

// Writer writes a newc archive: WriteHeader, then the body with Write, for
// each entry, then Close, which writes the trailer record.
type Writer struct {
	w         io.Writer
	name      string // entry being written, for errors
	remaining int64  // body bytes still expected
	padding   int64  // zero bytes after the body
	hdr       [headerSize + MaxNameSize + 3]byte
	err       error // sticky: the archive is corrupt after any write error
	closed    bool
}

// NewWriter returns a Writer writing to w. It buffers nothing: wrap w in a
// bufio.Writer when it is unbuffered.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteHeader finishes the previous entry and writes h. For a symlink it also
// writes the target (h.Linkname) as the body, so no Write follows.
func (w *Writer) WriteHeader(h *Header) error {
	if err := w.finish(); err != nil {
		return err
	}
	size := h.Size
	if h.Type() == TypeSymlink {
		size = int64(len(h.Linkname))
	}
	if err := checkHeader(h, size); err != nil {
		return err
	}
	fields := [13]uint32{
		h.Ino, h.Mode, h.UID, h.GID, h.NLink, uint32(h.MTime), uint32(size),
		h.DevMajor, h.DevMinor, h.RdevMajor, h.RdevMinor, uint32(len(h.Name) + 1), 0,
	}
	b := w.hdr[:0]
	b = append(b, magicNewc...)
	for _, f := range fields {
		b = appendHex8(b, f)
	}
	b = append(b, h.Name...)
	b = append(b, 0)
	for int64(len(b)) < pad4(int64(len(b))) {
		b = append(b, 0)
	}
	if err := w.write(b); err != nil {
		return fmt.Errorf("write header %s: %w", h.Name, err)
	}
	w.name, w.remaining, w.padding = h.Name, size, pad4(size)-size
	if h.Type() == TypeSymlink {
		if _, err := io.WriteString(w, h.Linkname); err != nil {
			return err
		}
	}
	return nil
}

// Write writes body bytes of the current entry; writing more than its
// header's Size fails with ErrWriteTooLong.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if int64(len(p)) > w.remaining {
		return 0, fmt.Errorf("%s: %w", w.name, ErrWriteTooLong)
	}
	n, err := w.w.Write(p)
	w.remaining -= int64(n)
	if err != nil {
		w.err = err
		return n, fmt.Errorf("write %s: %w", w.name, err)
	}
	return n, nil
}

// Close finishes the last entry and writes the trailer record. It does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	if err := w.WriteHeader(&Header{Name: Trailer, NLink: 1}); err != nil {
		return err
	}
	w.closed = true
	return nil
}

func (w *Writer) finish() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	if w.remaining != 0 {
		w.err = fmt.Errorf("%s: %d bytes missing: %w", w.name, w.remaining, ErrShortBody)
		return w.err
	}
	if w.padding > 0 {
		var zero [3]byte
		if err := w.write(zero[:w.padding]); err != nil {
			return fmt.Errorf("pad %s: %w", w.name, err)
		}
		w.padding = 0
	}
	return nil
}

func (w *Writer) write(b []byte) error {
	if _, err := w.w.Write(b); err != nil {
		w.err = err
		return err
	}
	return nil
}

func checkHeader(h *Header, size int64) error {
	switch {
	case h.Name == "":
		return fmt.Errorf("empty name: %w", ErrHeader)
	case len(h.Name)+1 > MaxNameSize:
		return fmt.Errorf("%.40s...: name longer than %d bytes: %w", h.Name, MaxNameSize-1, ErrHeader)
	case size < 0 || size > math.MaxUint32:
		return rangeError(h.Name, "size", size)
	case h.MTime < 0 || h.MTime > math.MaxUint32:
		return rangeError(h.Name, "mtime", h.MTime)
	}
	for i := 0; i < len(h.Name); i++ {
		if h.Name[i] == 0 {
			return fmt.Errorf("%q: NUL in name: %w", h.Name, ErrHeader)
		}
	}
	return nil
}

// appendHex8 appends v as 8 upper-case hex digits, as GNU cpio writes them.
func appendHex8(b []byte, v uint32) []byte {
	const digits = "0123456789ABCDEF"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[(v>>uint(shift))&0xf])
	}
	return b
}
