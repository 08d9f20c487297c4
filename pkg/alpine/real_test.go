package alpine

import (
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Real Alpine data, signed by Alpine (testdata/alpine-real/README.md): the
// verifier must accept what Alpine publishes, not only what the tests sign.

const (
	realDir      = "testdata/alpine-real"
	realIndex    = realDir + "/APKINDEX-v3.17-main-aarch64.tar.gz"
	realPackage  = realDir + "/alpine-baselayout-3.2.0-r23.apk"
	realKeyName  = "alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub" // aarch64
	otherKeyName = "alpine-devel@lists.alpinelinux.org-4a6a0840.rsa.pub" // x86_64
)

func readReal(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realKeys is a keyring of the named key files of testdata/alpine-real.
func realKeys(t *testing.T, names ...string) Keyring {
	t.Helper()
	all, err := LoadKeys(realDir)
	if err != nil {
		t.Fatal(err)
	}
	keys := Keyring{}
	for _, n := range names {
		keys[n] = all[n]
	}
	return keys
}

func TestRealIndexVerifiesAndListsFirmware(t *testing.T) {
	entries, err := ReadIndex(readReal(t, realIndex), realKeys(t, realKeyName))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5004 {
		t.Errorf("%d packages, want 5004", len(entries))
	}
	var fw []IndexEntry
	var installed int64
	for _, e := range entries {
		if strings.HasPrefix(e.Name, "linux-firmware") {
			fw = append(fw, e)
			installed += e.InstalledSize
		}
	}
	if len(fw) != 96 || installed != 1030459392 {
		t.Errorf("linux-firmware*: %d packages, %d installed bytes; want 96 and 1030459392", len(fw), installed)
	}
	for _, e := range fw {
		if len(e.Checksum) != sha1.Size || e.Size <= 0 || e.InstalledSize <= 0 || e.Version != "20221214-r1" || e.Arch != "aarch64" {
			t.Errorf("incomplete entry %+v", e)
		}
	}
	// One entry against the index text as Alpine wrote it.
	for _, e := range fw {
		if e.Name == "linux-firmware-meson" {
			if got := "Q1" + base64.StdEncoding.EncodeToString(e.Checksum); got != "Q1AgT4tdMtN6jw16KVxygLnQzwfgg=" || e.Size != 115229 || e.InstalledSize != 348160 {
				t.Errorf("linux-firmware-meson: C:%s S:%d I:%d", got, e.Size, e.InstalledSize)
			}
		}
	}
}

// The variants a verifier must refuse (testdata/alpine-real/README.md).
func TestRealIndexRefusesTampering(t *testing.T) {
	data := readReal(t, realIndex)
	parts, err := splitGzip(data)
	if err != nil || len(parts) != 2 {
		t.Fatalf("split: %d members, %v", len(parts), err)
	}
	sigMember, body := parts[0], parts[1]
	stranger := newSigner(t, realKeyName) // same name, another key
	outsider := newSigner(t, "someone@example.org-61234567.rsa.pub")
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	flip := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 0x01
		return c
	}
	trustStranger := realKeys(t, realKeyName)
	trustStranger[outsider.name] = &outsider.key.PublicKey

	tests := []struct {
		name string
		data []byte
		keys Keyring
	}{
		// The gzip header's mtime: the member still decompresses, so only
		// the signature can catch it.
		{"flipped byte in the body's gzip header", cat(sigMember, flip(body, 5)), realKeys(t, realKeyName)},
		{"flipped byte in the body's compressed data", cat(sigMember, flip(body, len(body)/2)), realKeys(t, realKeyName)},
		{"body signed by another key under Alpine's key name", cat(stranger.sign(t, body), body), realKeys(t, realKeyName)},
		{"signed by a key that is not trusted", cat(outsider.sign(t, body), body), realKeys(t, realKeyName)},
		{"Alpine's signature, but only another key trusted", data, realKeys(t, otherKeyName)},
		{"Alpine's signature checked against an outsider's key of the same name", data, Keyring{realKeyName: &outsider.key.PublicKey}},
		{"unsigned", body, realKeys(t, realKeyName)},
		{"signature member only", sigMember, realKeys(t, realKeyName)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadIndex(tt.data, tt.keys)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(tt.name, "compressed data") && !errors.Is(err, ErrSignature) {
				t.Errorf("err = %v, want ErrSignature", err)
			}
		})
	}
	// A trusted outsider's valid signature is accepted: the check is the
	// keyring, not the name.
	if _, err := ReadIndex(cat(outsider.sign(t, body), body), trustStranger); err != nil {
		t.Errorf("index re-signed by a trusted key: %v", err)
	}
}

// A member that decompresses past maxMember is refused while the index is
// split, before anything reads it: a few kilobytes must not cost minutes of
// decompression.
func TestReadIndexBoundsMemberSize(t *testing.T) {
	parts, err := splitGzip(readReal(t, realIndex))
	if err != nil {
		t.Fatal(err)
	}
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	if _, err := io.CopyN(zw, zeroReader{}, maxMember+1); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = ReadIndex(append(bytes.Clone(parts[0]), bomb.Bytes()...), realKeys(t, realKeyName))
	if err == nil || !strings.Contains(err.Error(), "decompresses to more than") {
		t.Fatalf("index with a %d-byte member of %d zeros: err = %v", bomb.Len(), maxMember+1, err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// The real package's control member hashes to its published Q1 checksum,
// and its signature, control checksum and data hash verify as a whole.
func TestRealPackageVerifies(t *testing.T) {
	apk := readReal(t, realPackage)
	sum, err := base64.StdEncoding.DecodeString(strings.TrimPrefix("Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc=", "Q1"))
	if err != nil {
		t.Fatal(err)
	}
	parts, err := splitGzip(apk)
	if err != nil || len(parts) != 3 {
		t.Fatalf("split: %d members, %v", len(parts), err)
	}
	if got := sha1.Sum(parts[1]); !bytes.Equal(got[:], sum) {
		t.Fatalf("control member sha1 = %x, want %x (Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc=)", got, sum)
	}
	entry := IndexEntry{Name: "alpine-baselayout", Version: "3.2.0-r23", Checksum: sum, InstalledSize: 339968}
	pkg, err := OpenPackage(bytes.NewReader(apk), int64(len(apk)), entry, realKeys(t, realKeyName))
	if err != nil {
		t.Fatal(err)
	}
	if _, off, n := pkg.data.Outer(); off != int64(len(parts[0])+len(parts[1])) || n != int64(len(parts[2])) {
		t.Errorf("data member at %d+%d, want %d+%d", off, n, len(parts[0])+len(parts[1]), len(parts[2]))
	}
	if _, err := gzip.NewReader(pkg.Data()); err != nil {
		t.Errorf("data member is not gzip: %v", err)
	}

	// Extracted through the safe extractor.
	p := filepath.Join(t.TempDir(), "pkg.apk")
	if err := os.WriteFile(p, apk, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "alpine-baselayout")
	if err := UnpackPackage(t.Context(), p, entry, realKeys(t, realKeyName), dest, PackageExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "etc/modprobe.d/aliases.conf")); err != nil || len(b) != 1545 {
		t.Errorf("etc/modprobe.d/aliases.conf: %d bytes, %v", len(b), err)
	}

	for _, tt := range []struct {
		name  string
		entry IndexEntry
		keys  Keyring
		want  string
	}{
		{"another Q1 checksum", IndexEntry{Name: entry.Name, Version: entry.Version, Checksum: make([]byte, sha1.Size)}, realKeys(t, realKeyName), "checksum mismatch"},
		{"key not trusted", entry, realKeys(t, otherKeyName), "none of them a trusted key"},
	} {
		if _, err := OpenPackage(bytes.NewReader(apk), int64(len(apk)), tt.entry, tt.keys); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	// Flipping any byte of the data member breaks the data hash.
	bad := bytes.Clone(apk)
	bad[len(apk)-100] ^= 0x40
	if _, err := OpenPackage(bytes.NewReader(bad), int64(len(bad)), entry, realKeys(t, realKeyName)); err == nil || !strings.Contains(err.Error(), "data member") {
		t.Errorf("tampered data: err = %v", err)
	}
	// A package bigger than its index allows is refused while extracting.
	small := entry
	small.InstalledSize = 1
	if err := UnpackPackage(t.Context(), p, small, realKeys(t, realKeyName), filepath.Join(t.TempDir(), "x"), PackageExtractOptions{MaxBytes: 4096}); err == nil || !errors.Is(err, errTooLarge) {
		t.Errorf("bounded extraction: err = %v", err)
	}
}

// The product trusts Alpine's x86_64 keys, plus ALPINE_EXTRA_KEYS; an extra
// key may not take the name of one of Alpine's.
func TestTrustedKeys(t *testing.T) {
	keys := AlpineKeys()
	for _, name := range []string{
		"alpine-devel@lists.alpinelinux.org-4a6a0840.rsa.pub",
		"alpine-devel@lists.alpinelinux.org-5261cecb.rsa.pub",
		"alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub",
	} {
		if keys[name] == nil {
			t.Errorf("Alpine key %s missing", name)
		}
	}
	if len(keys) != 3 {
		t.Errorf("%d Alpine keys, want 3", len(keys))
	}
	// The embedded 4a6a0840 is the same key as the one beside the real data.
	if !keys[otherKeyName].Equal(realKeys(t, otherKeyName)[otherKeyName]) {
		t.Error("embedded 4a6a0840 differs from testdata's")
	}
	if k, err := TrustedKeys(""); err != nil || len(k) != 3 {
		t.Errorf("TrustedKeys(\"\") = %d keys, %v", len(k), err)
	}

	extra := t.TempDir()
	s := newSigner(t, "fixture@example.org-1234abcd.rsa.pub")
	os.WriteFile(filepath.Join(extra, s.name), []byte(s.publicPEM(t)), 0o644)
	os.WriteFile(filepath.Join(extra, "README.md"), []byte("not a key\n"), 0o644)
	k, err := TrustedKeys(extra)
	if err != nil || len(k) != 4 || k[s.name] == nil {
		t.Errorf("TrustedKeys(extra) = %d keys, %v", len(k), err)
	}
	os.WriteFile(filepath.Join(extra, otherKeyName), []byte(s.publicPEM(t)), 0o644)
	if _, err := TrustedKeys(extra); err == nil || !strings.Contains(err.Error(), otherKeyName) {
		t.Errorf("extra key named like Alpine's: err = %v", err)
	}
	if _, err := TrustedKeys(filepath.Join(extra, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing dir: err = %v", err)
	}
}
