package alpine

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/archive"
	"github.com/threefoldtech/zosbuilder/pkg/download"
)

// Architecture is the source's architecture: Arch, x86_64 when empty.
func (s Source) Architecture() string { return s.arch() }

// RepositoryArchURL is the directory of one repository for the source's
// architecture, holding APKINDEX.tar.gz and the packages
// (<mirror>/v3.22/main/x86_64).
func (s Source) RepositoryArchURL(repo string) string {
	return s.RepositoryURL(repo) + "/" + s.arch()
}

// FetchIndex downloads the APKINDEX.tar.gz of the repository at repoURL
// (e.g. <mirror>/v3.22/main/x86_64), verifies its signature against keys
// and returns its entries, each with Repository set to repoURL.
func FetchIndex(ctx context.Context, f *download.Fetcher, repoURL string, keys Keyring) ([]IndexEntry, error) {
	indexURL := repoURL + "/APKINDEX.tar.gz"
	data, err := f.Bytes(ctx, indexURL)
	if err != nil {
		return nil, err
	}
	entries, err := ReadIndex(data, keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", redact.MaskURL(indexURL), err)
	}
	for i := range entries {
		entries[i].Repository = repoURL
	}
	return entries, nil
}

// FileName is the entry's file name in its repository, NAME-VERSION.apk.
// Names and versions come from a signed index, but they become file names
// and URLs here: anything that could leave a directory is refused.
func (e IndexEntry) FileName() (string, error) {
	name := e.Name + "-" + e.Version + ".apk"
	if e.Name == "" || e.Version == "" || strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("package %q version %q: not a safe file name", e.Name, e.Version)
	}
	return name, nil
}

// URL is where the entry's .apk is: its repository's URL and FileName.
func (e IndexEntry) URL() (string, error) {
	name, err := e.FileName()
	if err != nil {
		return "", err
	}
	if e.Repository == "" {
		return "", fmt.Errorf("package %s: no repository (entries from FetchIndex have one)", e.Name)
	}
	return e.Repository + "/" + name, nil
}

// VerifiedPackage is an .apk that OpenPackage checked: nothing of a
// package is used before.
type VerifiedPackage struct {
	Entry IndexEntry
	data  *io.SectionReader
}

// Data is the package's data member: a gzip-compressed tar of its files.
func (p *VerifiedPackage) Data() *io.SectionReader {
	return io.NewSectionReader(p.data, 0, p.data.Size())
}

// OpenPackage verifies the .apk in r (size bytes) against its index entry
// and returns it. The chain is checked before any byte of the data is used: the
// signature member signs the control member with a key of the keyring; the
// control member's SHA-1 is the index's C: checksum (and the index was
// signed); the SHA-256 of everything after the control member is the
// datahash its .PKGINFO declares. Only the signature and control members
// are read into memory (bounded); the data is streamed through the hash, so
// a package of any size is verified in constant memory.
func OpenPackage(r io.ReaderAt, size int64, want IndexEntry, keys Keyring) (*VerifiedPackage, error) {
	br := &countingReader{r: bufio.NewReader(io.NewSectionReader(r, 0, size))}
	sigEnd, err := memberEnd(br)
	if err != nil {
		return nil, fmt.Errorf("signature member: %w", err)
	}
	controlEnd, err := memberEnd(br)
	if err != nil {
		return nil, fmt.Errorf("control member: %w", err)
	}
	if controlEnd >= size {
		return nil, fmt.Errorf("%w: want signature, control and data members, found no data member", ErrSignature)
	}
	head := make([]byte, controlEnd)
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, err
	}
	sig, control := head[:sigEnd], head[sigEnd:]
	if _, err := keys.verify(sig, control); err != nil {
		return nil, err
	}
	if got := sha1.Sum(control); !bytes.Equal(got[:], want.Checksum) {
		return nil, fmt.Errorf("control member: %w: expected sha1 %x (APKINDEX), got %x", download.ErrChecksum, want.Checksum, got)
	}
	files, err := tarFiles(control)
	if err != nil {
		return nil, fmt.Errorf("control member: %w", err)
	}
	datahash := pkginfo(files[".PKGINFO"], "datahash")
	if datahash == "" {
		return nil, errors.New(".PKGINFO has no datahash")
	}
	data := io.NewSectionReader(r, controlEnd, size-controlEnd)
	h := sha256.New()
	if _, err := io.Copy(h, data); err != nil {
		return nil, fmt.Errorf("data member: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != datahash {
		return nil, fmt.Errorf("data member: %w: expected sha256 %s (.PKGINFO), got %s", download.ErrChecksum, datahash, got)
	}
	return &VerifiedPackage{Entry: want, data: io.NewSectionReader(r, controlEnd, size-controlEnd)}, nil
}

// countingReader counts the bytes a gzip reader takes. It is an
// io.ByteReader, so the decompressor reads exactly one member and no byte
// more: the count is where the next member starts.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// memberEnd reads one gzip member (its decompressed size bounded by
// maxMember) and returns the offset where it ends.
func memberEnd(c *countingReader) (int64, error) {
	zr, err := gzip.NewReader(c)
	if err != nil {
		return 0, err
	}
	zr.Multistream(false)
	n, err := io.Copy(io.Discard, io.LimitReader(zr, maxMember+1))
	if err != nil {
		return 0, err
	}
	if n > maxMember {
		return 0, fmt.Errorf("decompresses to more than %d bytes", maxMember)
	}
	return c.n, nil
}

// PackageExtractOptions configure VerifiedPackage.Extract and UnpackPackage.
type PackageExtractOptions struct {
	// MaxBytes bounds the decompressed data member; 0 derives a bound from
	// the entry's installed size (twice it, plus 64 MiB for tar headers and
	// odd measurements), or 4 GiB when the index gives none.
	MaxBytes int64
	Log      logrus.FieldLogger
}

// Extract writes the package's files into dest through pkg/archive's safe
// extractor. dest is built under a temporary name beside it and renamed
// into place, so it exists only complete; a dest already there is kept
// (another build unpacked the same package meanwhile).
func (p *VerifiedPackage) Extract(ctx context.Context, dest string, opt PackageExtractOptions) error {
	limit := opt.MaxBytes
	if limit <= 0 {
		limit = 4 << 30
		if p.Entry.InstalledSize > 0 {
			limit = 2*p.Entry.InstalledSize + 64<<20
		}
	}
	zr, err := gzip.NewReader(p.Data())
	if err != nil {
		return fmt.Errorf("data member: %w", err)
	}
	// The extractor reads its stream to the end, so the gzip CRC is checked
	// too (the hash already matched).
	return unpack(ctx, &boundedReader{r: zr, left: limit}, dest, opt.Log)
}

// UnpackPackage verifies the .apk file apk against its index entry with
// keys (OpenPackage) and extracts it into dest (VerifiedPackage.Extract).
func UnpackPackage(ctx context.Context, apk string, want IndexEntry, keys Keyring, dest string, opt PackageExtractOptions) error {
	f, err := os.Open(apk)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	p, err := OpenPackage(f, st.Size(), want, keys)
	if err != nil {
		return err
	}
	return p.Extract(ctx, dest, opt)
}

// boundedReader fails once more than left bytes were read.
type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errTooLarge
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

var errTooLarge = errors.New("data member decompresses to more than the bound the index's installed size allows")

// unpack extracts a package's data (a tar stream, compressed or not) into
// dest through a temporary directory, so dest exists only complete.
func unpack(ctx context.Context, data io.Reader, dest string, log logrus.FieldLogger) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+"-")
	if err != nil {
		return err
	}
	defer fsutil.RemoveAll(tmp)
	if err := archive.ExtractTar(ctx, data, tmp, archive.Options{Log: log}); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil && !errors.Is(err, os.ErrExist) {
		// Another build unpacked the same package meanwhile: keep it.
		if _, serr := os.Stat(dest); serr != nil {
			return err
		}
	}
	return nil
}
