package cpio_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/cpio"
)

// entry is one record of the test archive with its body.
type entry struct {
	hdr  cpio.Header
	body string
}

// mtime is old enough for GNU cpio to print the year, not the time of day.
var mtime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC).Unix()

// sample covers every type the initramfs writer emits: directories,
// regular files, setuid, a hard link stored once (data on the first name),
// a symlink, character and block device nodes, a FIFO, a non-root owner,
// a sticky directory and a setgid file without execute bit.
func sample() []entry {
	h := func(name string, mode, uid, nlink, ino uint32, size int) cpio.Header {
		return cpio.Header{Name: name, Mode: mode, UID: uid, GID: uid, NLink: nlink, Ino: ino, MTime: mtime, Size: int64(size)}
	}
	dev := func(name string, mode, major, minor, ino uint32) entry {
		e := entry{hdr: h(name, mode, 0, 1, ino, 0)}
		e.hdr.RdevMajor, e.hdr.RdevMinor = major, minor
		return e
	}
	link := entry{hdr: h("bin/sh", cpio.TypeSymlink|0o777, 0, 1, 4, 0)}
	link.hdr.Linkname = "busybox"
	return []entry{
		{hdr: h(".", cpio.TypeDir|0o755, 0, 2, 1, 0)},
		{hdr: h("bin", cpio.TypeDir|0o755, 0, 2, 2, 0)},
		{hdr: h("bin/busybox", cpio.TypeReg|0o755, 0, 1, 3, 12), body: "#!/bin/true\n"},
		link,
		{hdr: h("bin/su", cpio.TypeReg|cpio.ModeSetuid|0o755, 0, 1, 5, 3), body: "su\n"},
		{hdr: h("dev", cpio.TypeDir|0o755, 0, 2, 6, 0)},
		dev("dev/console", cpio.TypeChar|0o600, 5, 1, 7),
		dev("dev/null", cpio.TypeChar|0o666, 1, 3, 8),
		dev("dev/sda", cpio.TypeBlock|0o660, 8, 0, 9),
		dev("dev/ttyS300", cpio.TypeChar|0o620, 4, 300, 10),
		{hdr: h("etc", cpio.TypeDir|0o755, 0, 2, 11, 0)},
		{hdr: h("etc/a", cpio.TypeReg|0o644, 0, 2, 12, 6), body: "hello\n"},
		{hdr: h("etc/b", cpio.TypeReg|0o644, 0, 2, 12, 0)},
		{hdr: h("etc/empty", cpio.TypeReg|0o600, 0, 1, 13, 0)},
		{hdr: h("home", cpio.TypeDir|0o700, 1000, 2, 14, 0)},
		{hdr: h("home/user.txt", cpio.TypeReg|0o640, 1000, 1, 15, 5), body: "user\n"},
		{hdr: h("run", cpio.TypeDir|0o755, 0, 2, 16, 0)},
		{hdr: h("run/fifo", cpio.TypeFIFO|0o600, 0, 1, 17, 0)},
		{hdr: h("tmp", cpio.TypeDir|cpio.ModeSticky|0o777, 0, 2, 18, 0)},
		{hdr: h("tmp/sg", cpio.TypeReg|cpio.ModeSetgid|0o644, 0, 1, 19, 3), body: "sg\n"},
	}
}

func writeArchive(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if err := w.WriteHeader(&hdr); err != nil {
			t.Fatalf("WriteHeader %s: %v", hdr.Name, err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatalf("Write %s: %v", hdr.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

func TestRecordSizeIsExact(t *testing.T) {
	entries := sample()
	want := cpio.RecordSize(&cpio.Header{Name: cpio.Trailer})
	for _, e := range entries {
		want += cpio.RecordSize(&e.hdr)
	}
	if got := int64(len(writeArchive(t, entries))); got != want {
		t.Errorf("archive is %d bytes, RecordSize sums to %d", got, want)
	}
}

// TestGNUList reads the archive with GNU cpio -itv (an independent reader)
// and compares every listed field with the header it was written from.
func TestGNUList(t *testing.T) {
	testutil.RequireTool(t, "cpio")
	entries := sample()
	out := testutil.Run(t, "", writeArchive(t, entries), "cpio", "-itvn", "--quiet")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(entries) {
		t.Fatalf("cpio lists %d entries, wrote %d:\n%s", len(lines), len(entries), out)
	}
	for i, e := range entries {
		if got, want := parseListing(t, lines[i]), expectListing(e.hdr); got != want {
			t.Errorf("entry %d:\ncpio -itv: %+v\nwritten:   %+v", i, got, want)
		}
	}
}

// listing holds the fields GNU cpio -itvn prints.
type listing struct {
	Mode, Owner, SizeOrDev, Date, Name, Target string
	NLink                                      int
}

var listRE = regexp.MustCompile(`^(\S{10})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+,\s+\d+|\d+)\s+(\w{3}\s+\d+\s+\d{4})\s(.+?)(?: -> (.*))?$`)

func parseListing(t *testing.T, line string) listing {
	t.Helper()
	m := listRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected cpio -itv line %q", line)
	}
	n, _ := strconv.Atoi(m[2])
	return listing{Mode: m[1], NLink: n, Owner: m[3] + ":" + m[4],
		SizeOrDev: strings.Join(strings.Fields(m[5]), " "), Date: strings.Join(strings.Fields(m[6]), " "),
		Name: m[7], Target: m[8]}
}

func expectListing(h cpio.Header) listing {
	size := strconv.FormatInt(h.Size, 10)
	switch h.Type() {
	case cpio.TypeChar, cpio.TypeBlock:
		size = fmt.Sprintf("%d, %d", h.RdevMajor, h.RdevMinor)
	case cpio.TypeSymlink:
		size = strconv.Itoa(len(h.Linkname))
	}
	return listing{
		Mode: h.ModeString(), NLink: int(h.NLink), Owner: fmt.Sprintf("%d:%d", h.UID, h.GID),
		SizeOrDev: size, Date: time.Unix(h.MTime, 0).Format("Jan 2 2006"), Name: h.Name, Target: h.Linkname,
	}
}

// TestGNUExtract unpacks the archive with GNU cpio -id as the current user
// (device nodes excluded: creating them needs root; -itv checks them) and
// compares the resulting tree with what was written.
func TestGNUExtract(t *testing.T) {
	testutil.RequireTool(t, "cpio")
	entries := sample()
	dir := t.TempDir()
	testutil.Run(t, dir, writeArchive(t, entries), "cpio", "-id", "--quiet", "--no-absolute-filenames", "-f", "dev/*", "run/fifo")
	for _, e := range entries {
		h := e.hdr
		if h.Type() == cpio.TypeChar || h.Type() == cpio.TypeBlock || h.Type() == cpio.TypeFIFO {
			continue
		}
		p := filepath.Join(dir, h.Name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s not extracted: %v", h.Name, err)
			continue
		}
		if got := cpio.ModeOf(fi.Mode()); got != h.Mode {
			t.Errorf("%s: mode %o, want %o", h.Name, got, h.Mode)
		}
		switch h.Type() {
		case cpio.TypeSymlink:
			if got, _ := os.Readlink(p); got != h.Linkname {
				t.Errorf("%s -> %q, want %q", h.Name, got, h.Linkname)
			}
		case cpio.TypeReg:
			if h.Size == 0 && h.NLink > 1 {
				continue // a later hard link; compared below
			}
			if got, _ := os.ReadFile(p); string(got) != e.body {
				t.Errorf("%s holds %q, want %q", h.Name, got, e.body)
			}
		}
		if os.Getuid() == 0 { // only root's cpio -i restores owners
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != h.UID || st.Gid != h.GID {
				t.Errorf("%s: owner %d:%d, want %d:%d", h.Name, st.Uid, st.Gid, h.UID, h.GID)
			}
		}
	}
	a, errA := os.Stat(filepath.Join(dir, "etc/a"))
	b, errB := os.Stat(filepath.Join(dir, "etc/b"))
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Errorf("etc/a and etc/b are not one hard-linked file (%v, %v)", errA, errB)
	}
}

// TestReadGNUArchive reads an archive GNU cpio -o wrote from a real tree
// and compares each entry with the file it came from.
func TestReadGNUArchive(t *testing.T) {
	testutil.RequireTool(t, "cpio")
	dir := t.TempDir()
	testutil.Must(t, os.MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "a/b/file"), []byte("content of a file\n"), 0o640))
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "a/odd"), bytes.Repeat([]byte("x"), 4097), 0o600))
	testutil.Must(t, os.Link(filepath.Join(dir, "a/b/file"), filepath.Join(dir, "a/hard")))
	testutil.Must(t, os.Symlink("b/file", filepath.Join(dir, "a/link")))
	names := "a\na/b\na/b/file\na/hard\na/link\na/odd\n"
	archive := testutil.Run(t, dir, []byte(names), "cpio", "-o", "-H", "newc", "--quiet")

	r := cpio.NewReader(strings.NewReader(archive))
	var got []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got = append(got, h.Name)
		fi, err := os.Lstat(filepath.Join(dir, h.Name))
		testutil.Must(t, err)
		if want := cpio.ModeOf(fi.Mode()); h.Mode != want {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
		body, err := io.ReadAll(r)
		testutil.Must(t, err)
		switch {
		case h.Type() == cpio.TypeSymlink:
			if target, _ := os.Readlink(filepath.Join(dir, h.Name)); h.Linkname != target || len(body) != 0 {
				t.Errorf("%s: link %q body %q, want link %q", h.Name, h.Linkname, body, target)
			}
		case h.Type() == cpio.TypeReg && h.Size > 0:
			if want, _ := os.ReadFile(filepath.Join(dir, h.Name)); !bytes.Equal(body, want) {
				t.Errorf("%s: body differs from the file", h.Name)
			}
		}
	}
	if strings.Join(got, "\n")+"\n" != names {
		t.Errorf("read names %q, want %q", got, names)
	}
	if r.Offset() > int64(len(archive)) || int64(len(archive))-r.Offset() >= 512 {
		t.Errorf("reader stopped at %d of %d bytes (GNU pads to 512 after the trailer)", r.Offset(), len(archive))
	}
}

func TestWriterErrors(t *testing.T) {
	tests := []struct {
		name string
		do   func(w *cpio.Writer) error
		want error
	}{
		{"write too long", func(w *cpio.Writer) error {
			if err := w.WriteHeader(&cpio.Header{Name: "f", Mode: cpio.TypeReg, Size: 2}); err != nil {
				return err
			}
			_, err := w.Write([]byte("abc"))
			return err
		}, cpio.ErrWriteTooLong},
		{"short body", func(w *cpio.Writer) error {
			if err := w.WriteHeader(&cpio.Header{Name: "f", Mode: cpio.TypeReg, Size: 2}); err != nil {
				return err
			}
			return w.Close()
		}, cpio.ErrShortBody},
		{"size too large", func(w *cpio.Writer) error {
			return w.WriteHeader(&cpio.Header{Name: "f", Mode: cpio.TypeReg, Size: 1 << 32})
		}, cpio.ErrFieldRange},
		{"negative mtime", func(w *cpio.Writer) error {
			return w.WriteHeader(&cpio.Header{Name: "f", Mode: cpio.TypeReg, MTime: -1})
		}, cpio.ErrFieldRange},
		{"empty name", func(w *cpio.Writer) error { return w.WriteHeader(&cpio.Header{Mode: cpio.TypeDir}) }, cpio.ErrHeader},
		{"write after close", func(w *cpio.Writer) error {
			if err := w.Close(); err != nil {
				return err
			}
			return w.WriteHeader(&cpio.Header{Name: "f", Mode: cpio.TypeReg})
		}, cpio.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(cpio.NewWriter(io.Discard)); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	good := writeArchive(t, sample())
	tests := []struct {
		name    string
		archive []byte
		want    error
	}{
		{"truncated in a body", good[:len(good)/2], io.ErrUnexpectedEOF},
		{"no trailer", good[:int64(len(good))-cpio.RecordSize(&cpio.Header{Name: cpio.Trailer})], io.ErrUnexpectedEOF},
		{"bad magic", append([]byte("070707"), good[6:]...), cpio.ErrHeader},
		{"bad hex", append([]byte("070701zz"), good[8:]...), cpio.ErrHeader},
		{"empty", nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cpio.NewReader(bytes.NewReader(tt.archive))
			var err error
			for err == nil {
				if _, err = r.Next(); err == nil {
					_, err = io.Copy(io.Discard, r)
				}
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestRoundTrip reads back what the Writer wrote, headers and bodies.
func TestRoundTrip(t *testing.T) {
	entries := sample()
	r := cpio.NewReader(bytes.NewReader(writeArchive(t, entries)))
	for _, e := range entries {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("Next before %s: %v", e.hdr.Name, err)
		}
		want := e.hdr
		if want.Type() == cpio.TypeSymlink {
			want.Size = int64(len(want.Linkname))
		}
		if *h != want {
			t.Errorf("read  %+v\nwrote %+v", *h, want)
		}
		if body, _ := io.ReadAll(r); string(body) != e.body {
			t.Errorf("%s: body %q, want %q", h.Name, body, e.body)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last entry: %v, want io.EOF", err)
	}
}
