package cpio

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// entryOf is what a read archive holds: each header and body.
type entryOf struct {
	h    Header
	body []byte
}

// readAll reads every entry of an archive; bodies are capped at max bytes
// each (the fuzzer's inputs are small, the claimed sizes are not).
func readAll(data []byte, max int64) ([]entryOf, int64, error) {
	r := NewReader(bytes.NewReader(data))
	var out []entryOf
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, r.Offset(), nil
		}
		if err != nil {
			return out, r.Offset(), err
		}
		body, err := io.ReadAll(io.LimitReader(r, max))
		if err != nil {
			return out, r.Offset(), err
		}
		out = append(out, entryOf{*h, body})
	}
}

// FuzzReader feeds arbitrary bytes to the newc reader: it never panics,
// never claims to have consumed more than it was given, and an archive it
// reads completely is written back by the Writer and read again into the
// same entries. Run longer with
//
//	go test -run '^$' -fuzz '^FuzzReader$' -fuzztime 5m ./pkg/cpio
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, e := range []entryOf{
		{Header{Name: "dev", Mode: TypeDir | 0o755}, nil},
		{Header{Name: "dev/console", Mode: TypeChar | 0o600, RdevMajor: 5, RdevMinor: 1}, nil},
		{Header{Name: "init", Mode: TypeReg | 0o755, Size: 11, MTime: 1}, []byte("#!/bin/sh\n\n")},
		{Header{Name: "sbin/zinit", Mode: TypeSymlink | 0o777, Linkname: "/bin/busybox"}, nil},
	} {
		if err := w.WriteHeader(&e.h); err != nil {
			f.Fatal(err)
		}
		if _, err := w.Write(e.body); err != nil {
			f.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:200])
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, off, err := readAll(data, 1<<20)
		if off > int64(len(data)) {
			t.Fatalf("offset %d past the %d input bytes", off, len(data))
		}
		if err != nil {
			return
		}
		var out bytes.Buffer
		w := NewWriter(&out)
		for _, e := range entries {
			h := e.h
			if h.Type() == TypeSymlink {
				h.Size = 0
			}
			if err := w.WriteHeader(&h); err != nil {
				return // a header only a reader accepts (mtime past 2106, say)
			}
			if h.Type() != TypeSymlink {
				if _, err := w.Write(e.body); err != nil {
					t.Fatalf("write body of %q: %v", h.Name, err)
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		again, _, err := readAll(out.Bytes(), 1<<20)
		if err != nil {
			t.Fatalf("rewritten archive does not read back: %v", err)
		}
		if len(again) != len(entries) {
			t.Fatalf("%d entries, %d after the round trip", len(entries), len(again))
		}
		for i := range entries {
			a, b := entries[i], again[i]
			if a.h.Name != b.h.Name || a.h.Mode != b.h.Mode || a.h.Linkname != b.h.Linkname || !bytes.Equal(a.body, b.body) {
				t.Fatalf("entry %d differs after the round trip: %+v / %+v", i, a.h, b.h)
			}
		}
	})
}
