package download

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

// Checksum is a pinned digest of a download: sha256 (the default), or md5
// for the few upstreams that publish nothing stronger.
type Checksum struct {
	Algo string // "sha256" or "md5"
	Hex  string // lowercase
}

// ParseChecksum reads a pin: "" (none), a bare sha256 hex, "sha256:<hex>"
// or "md5:<hex>".
func ParseChecksum(s string) (Checksum, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return Checksum{}, nil
	}
	algo, sum, ok := strings.Cut(s, ":")
	if !ok {
		algo, sum = "sha256", s
	}
	c := Checksum{Algo: algo, Hex: sum}
	size := map[string]int{"sha256": sha256.Size, "md5": md5.Size}[algo]
	if _, err := hex.DecodeString(sum); size == 0 || err != nil || len(sum) != 2*size {
		return Checksum{}, fmt.Errorf("invalid checksum %q: want a sha256 (64 hex digits), sha256:<hex> or md5:<hex>", s)
	}
	return c, nil
}

// IsZero reports whether no checksum is pinned.
func (c Checksum) IsZero() bool { return c.Hex == "" }

// Weak reports whether the digest is not collision-resistant (md5): it
// catches a corrupted download, not a crafted one.
func (c Checksum) Weak() bool { return c.Algo == "md5" }

// String is the pin as written: a bare hex for sha256, "md5:<hex>" else.
func (c Checksum) String() string {
	if c.IsZero() || c.Algo == "sha256" {
		return c.Hex
	}
	return c.Algo + ":" + c.Hex
}

func (c Checksum) newHash() hash.Hash {
	if c.Algo == "md5" {
		return md5.New()
	}
	return sha256.New()
}

// hashFile returns the lowercase hex digest of the file at path with the
// checksum's algorithm.
func (c Checksum) hashFile(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := c.newHash()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
