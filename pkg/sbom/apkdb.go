package sbom

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/alpine"
)

// ApkInstalled is where apk keeps its database of installed packages,
// relative to the image root.
const ApkInstalled = "lib/apk/db/installed"

// Package is an Alpine package as the apk database of the image records it.
type Package struct {
	Name        string // P:
	Version     string // V:
	Arch        string // A:
	Origin      string // o: the source package (aport) it was built from
	License     string // L: as Alpine writes it (not always an SPDX expression)
	URL         string // U: the project's home page
	Description string // T:
	// Checksum is C:, apk's identity of the package: "Q1" and the base64
	// SHA-1 of the package's control segment (which itself holds the
	// SHA-256 of the data), as `apk info` and the index use it.
	Checksum string
	// Files are the regular files and symlinks the package installed
	// (F: directory, R: name), relative to the root; not kept in the SBOM.
	Files []string `json:"-"`
}

// ChecksumHex decodes Checksum into its algorithm (SHA1 for "Q1", SHA256
// for "Q2") and lowercase hex value; ok is false for anything else.
func (p Package) ChecksumHex() (algo, value string, ok bool) {
	var want int
	switch {
	case strings.HasPrefix(p.Checksum, "Q1"):
		algo, want = "SHA1", 20
	case strings.HasPrefix(p.Checksum, "Q2"):
		algo, want = "SHA256", 32
	default:
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(p.Checksum[2:])
	if err != nil || len(raw) != want {
		return "", "", false
	}
	return algo, hex.EncodeToString(raw), true
}

// ParseApkInstalled reads an apk database (lib/apk/db/installed): blocks
// of "X:value" lines, one block per package, separated by blank lines.
// name is used in messages. A package without P: or V: is an error naming
// its line; unknown keys are ignored, as apk does.
func ParseApkInstalled(r io.Reader, name string) ([]Package, error) {
	var (
		out   []Package
		cur   *Package
		dir   string
		start int
	)
	finish := func() error {
		if cur == nil {
			return nil
		}
		if cur.Name == "" || cur.Version == "" {
			return fmt.Errorf("%s:%d: package without P: or V:", name, start)
		}
		out = append(out, *cur)
		cur, dir = nil, ""
		return nil
	}
	err := alpine.ReadRecords(r, name, func(n int, key, value string) error {
		if cur == nil {
			cur, start = &Package{}, n
		}
		switch key {
		case "P":
			cur.Name = value
		case "V":
			cur.Version = value
		case "A":
			cur.Arch = value
		case "o":
			cur.Origin = value
		case "L":
			cur.License = value
		case "U":
			cur.URL = value
		case "T":
			cur.Description = value
		case "C":
			cur.Checksum = value
		case "F":
			dir = value
		case "R":
			p := path.Clean(path.Join(dir, value))
			if strings.HasPrefix(p, "../") || path.IsAbs(p) || p == ".." {
				return fmt.Errorf("%s:%d: file %q leaves the root", name, n, path.Join(dir, value))
			}
			cur.Files = append(cur.Files, p)
		}
		return nil
	}, finish)
	if err != nil {
		return nil, err
	}
	return out, nil
}
