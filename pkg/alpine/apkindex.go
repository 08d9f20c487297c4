package alpine

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// ErrSignature is wrapped by errors about a missing or invalid signature on
// an APKINDEX or a package.
var ErrSignature = errors.New("signature verification failed")

// maxMember bounds one decompressed member read into memory (an APKINDEX,
// a .PKGINFO, a signature).
const maxMember = 64 << 20

// Keyring holds the RSA public keys apk trusts, by file name (the name a
// signature refers to, e.g. alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub).
type Keyring map[string]*rsa.PublicKey

// LoadKeys reads the PEM public keys in dir (the minirootfs's
// /etc/apk/keys). A directory without any key is an error: nothing could be
// verified.
func LoadKeys(dir string) (Keyring, error) {
	keys, err := loadKeys(os.DirFS(dir), ".", dir)
	if err != nil {
		return nil, fmt.Errorf("load apk keys: %w", err)
	}
	return keys, nil
}

// IndexEntry is one package of an APKINDEX.
type IndexEntry struct {
	Name    string // P:
	Version string // V:
	Arch    string // A:
	// Checksum is the SHA1 of the package's control segment (C:Q1<base64>),
	// which the package's signature covers and which holds the data hash.
	Checksum []byte
	Size     int64    // S: the .apk's size
	Depends  []string // D:
	// InstalledSize is the I: field: what the package takes once
	// installed, as abuild measured it (du of the package's files).
	InstalledSize int64
	// Repository is the URL of the repository that listed the entry (set
	// by FetchIndex, empty from ParseIndex).
	Repository string
}

// ParseIndex reads the text of an APKINDEX: blank-line separated records
// of "X:value" lines (ReadRecords).
func ParseIndex(r io.Reader) ([]IndexEntry, error) {
	var out []IndexEntry
	var cur IndexEntry
	err := ReadRecords(r, "APKINDEX", func(n int, key, val string) error {
		switch key {
		case "P":
			cur.Name = val
		case "V":
			cur.Version = val
		case "A":
			cur.Arch = val
		case "S":
			cur.Size, _ = strconv.ParseInt(val, 10, 64)
		case "I":
			cur.InstalledSize, _ = strconv.ParseInt(val, 10, 64)
		case "D":
			cur.Depends = strings.Fields(val)
		case "C":
			sum, err := decodeChecksum(val)
			if err != nil {
				return fmt.Errorf("APKINDEX:%d: %w", n, err)
			}
			cur.Checksum = sum
		}
		return nil
	}, func() error {
		if cur.Name != "" {
			out = append(out, cur)
		}
		cur = IndexEntry{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadRecords reads apk's database format, which APKINDEX and
// lib/apk/db/installed share: records of "K:value" lines (K one character)
// separated by blank lines. It calls field for every line, with its
// number, and end after every record: at a blank line and at the end of r.
// Their errors are returned as they are; a line of another form, or one
// longer than 1 MiB, is an error naming name and the line.
func ReadRecords(r io.Reader, name string, field func(n int, key, value string) error, end func() error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			if err := end(); err != nil {
				return err
			}
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok || len(key) != 1 {
			return fmt.Errorf("%s:%d: want K:value, got %q", name, n, line)
		}
		if err := field(n, key, val); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s after line %d: %w", name, n, err)
	}
	return end()
}

// decodeChecksum decodes "Q1<base64 SHA1>"; the older hex MD5 form is not
// accepted since it proves nothing today.
func decodeChecksum(v string) ([]byte, error) {
	b64, ok := strings.CutPrefix(v, "Q1")
	if !ok {
		return nil, fmt.Errorf("unsupported checksum %q (want Q1 + base64 SHA1)", v)
	}
	sum, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sum) != sha1.Size {
		return nil, fmt.Errorf("invalid checksum %q", v)
	}
	return sum, nil
}

// splitGzip splits data into its concatenated gzip members. Signed apk
// files and indexes are a signature member followed by the signed ones.
// Each member's decompressed size is bounded (memberEnd): a hostile index
// cannot make the split decompress without end.
func splitGzip(data []byte) ([][]byte, error) {
	var parts [][]byte
	c := &countingReader{r: bufio.NewReader(bytes.NewReader(data))}
	for c.n < int64(len(data)) {
		start := c.n
		end, err := memberEnd(c)
		if err != nil {
			return nil, fmt.Errorf("gzip member at byte %d: %w", start, err)
		}
		parts = append(parts, data[start:end])
	}
	return parts, nil
}

// tarFiles returns the regular files of a gzip-compressed tar member,
// accepting the missing end-of-archive blocks of apk's members.
func tarFiles(member []byte) (map[string][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(member))
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := readAllLimited(tr, maxMember)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", hdr.Name, err)
		}
		files[hdr.Name] = b
	}
}

// verify checks that the signature member sig (a tar holding
// .SIGN.RSA.<key> for RSA/SHA1 or .SIGN.RSA256.<key> for RSA/SHA256) signs
// signed with a key of the keyring, and returns the key's name.
func (k Keyring) verify(sig, signed []byte) (string, error) {
	files, err := tarFiles(sig)
	if err != nil {
		return "", fmt.Errorf("%w: read signature: %w", ErrSignature, err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var tried []string
	for _, name := range names {
		s := files[name]
		hashType, key := crypto.SHA1, strings.TrimPrefix(name, ".SIGN.RSA.")
		if rest, ok := strings.CutPrefix(name, ".SIGN.RSA256."); ok {
			hashType, key = crypto.SHA256, rest
		} else if key == name {
			continue
		}
		tried = append(tried, key)
		pub, ok := k[key]
		if !ok {
			continue
		}
		h := hashType.New()
		h.Write(signed)
		if err := rsa.VerifyPKCS1v15(pub, hashType, h.Sum(nil), s); err != nil {
			return "", fmt.Errorf("%w: key %s: %w", ErrSignature, key, err)
		}
		return key, nil
	}
	if len(tried) == 0 {
		return "", fmt.Errorf("%w: not signed", ErrSignature)
	}
	return "", fmt.Errorf("%w: signed by %s, none of them a trusted key", ErrSignature, strings.Join(tried, ", "))
}

// ReadIndex verifies a signed APKINDEX.tar.gz against the keyring and
// returns its entries.
func ReadIndex(data []byte, keys Keyring) ([]IndexEntry, error) {
	parts, err := splitGzip(data)
	if err != nil {
		return nil, fmt.Errorf("APKINDEX.tar.gz: %w", err)
	}
	if len(parts) < 2 {
		return nil, fmt.Errorf("APKINDEX.tar.gz: %w: not signed", ErrSignature)
	}
	signed := data[len(parts[0]):]
	if _, err := keys.verify(parts[0], signed); err != nil {
		return nil, fmt.Errorf("APKINDEX.tar.gz: %w", err)
	}
	files, err := tarFiles(signed)
	if err != nil {
		return nil, fmt.Errorf("APKINDEX.tar.gz: %w", err)
	}
	idx, ok := files["APKINDEX"]
	if !ok {
		return nil, errors.New("APKINDEX.tar.gz: no APKINDEX file")
	}
	return ParseIndex(bytes.NewReader(idx))
}

// VerifyPackage checks a downloaded .apk held in memory against its index
// entry (see OpenPackage) and returns its data member (a gzip-compressed tar
// of the package's files).
func VerifyPackage(data []byte, want IndexEntry, keys Keyring) ([]byte, error) {
	p, err := OpenPackage(bytes.NewReader(data), int64(len(data)), want, keys)
	if err != nil {
		return nil, err
	}
	_, off, _ := p.data.Outer()
	return data[off:], nil
}

// pkginfo returns the value of key in a .PKGINFO ("key = value" lines).
func pkginfo(b []byte, key string) string {
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
