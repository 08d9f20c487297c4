package alpine

import (
	"bytes"
	"crypto/sha1"
	"reflect"
	"testing"
)

// FuzzAPKINDEX feeds arbitrary text to the APKINDEX parser and arbitrary
// bytes to the signed-index reader: neither panics, every entry has a name
// and a 20-byte checksum or none, and the same text signed into an
// APKINDEX.tar.gz by a trusted key reads back into the same entries. The
// seed corpus (testdata/fuzz/FuzzAPKINDEX) holds records of Alpine's real
// v3.17 index. Run longer with
//
//	go test -run '^$' -fuzz '^FuzzAPKINDEX$' -fuzztime 5m ./pkg/alpine
func FuzzAPKINDEX(f *testing.F) {
	s := newSigner(f, "fuzz@example.org-1.rsa.pub")
	keys := Keyring{s.name: &s.key.PublicKey}
	f.Add([]byte("P:apk-tools-static\nV:2.14.4-r0\nA:x86_64\nS:1000\nC:Q1" + "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" + "\nD:so:libc.musl-x86_64.so.1 musl\n\nP:b\n"))
	f.Add([]byte("P:x\nC:Q1short\n"))
	f.Add([]byte("no colon\n"))
	f.Add([]byte("\n\n\nPP:x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadIndex(data, keys)
		entries, err := ParseIndex(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Name == "" {
				t.Fatalf("entry without a name: %+v", e)
			}
			if e.Checksum != nil && len(e.Checksum) != sha1.Size {
				t.Fatalf("%s: checksum of %d bytes", e.Name, len(e.Checksum))
			}
		}
		body := tarGz(t, []tarEntry{{name: "DESCRIPTION", body: "fuzz"}, {name: "APKINDEX", body: string(data)}}, true)
		got, err := ReadIndex(append(s.sign(t, body), body...), keys)
		if err != nil {
			t.Fatalf("signed index of text ParseIndex accepts: %v", err)
		}
		if !reflect.DeepEqual(got, entries) {
			t.Fatalf("ReadIndex and ParseIndex disagree:\n%+v\n%+v", got, entries)
		}
	})
}
