// Package store holds the content-addressed blob stores that rfs flists
// route their blocks to: a local directory (dir://), S3 (s3://, s3s://), a
// read-only HTTP server (http://, https://) and a router that shards or
// replicates blobs over several of them by the first byte of the blob id.
//
// Stores are chosen by URL with the same grammar as rfs's `-s` flag, so a
// route written into an flist by this package is understood by the rfs tool on
// Zero-OS nodes, and the routes rfs writes are understood here. Credentials
// carried in a URL never appear in errors: every message names the store by
// its redacted URL. No read returns more than MaxBlobSize bytes, every network
// wait is bounded (package httpclient), and routes read from an flist are
// opened under a RoutePolicy (OpenWith, OpenRoutesWith).
package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/redact"
)

// Sentinel errors that callers branch on with errors.Is.
var (
	// ErrNotFound means the store does not hold the blob.
	ErrNotFound = errors.New("blob not found")
	// ErrAuth means the store refused the credentials (wrong key or secret,
	// or no permission for the operation).
	ErrAuth = errors.New("authentication failed")
	// ErrNoBucket means the S3 bucket does not exist.
	ErrNoBucket = errors.New("bucket does not exist")
	// ErrReadOnly means the store cannot be written (http stores).
	ErrReadOnly = errors.New("store is read-only")
	// ErrNotSupported means the URL names a store kind this package does not
	// implement (zdb://, server://).
	ErrNotSupported = errors.New("store type not supported")
	// ErrInvalidURL means a store URL or a STORES list is malformed.
	ErrInvalidURL = errors.New("invalid store url")
	// ErrNotRoutable means no route of a router covers the blob id.
	ErrNotRoutable = errors.New("blob id not routable")
	// ErrTooLarge means a store holds more than MaxBlobSize bytes under a
	// blob id: not an rfs blob, and not read further.
	ErrTooLarge = errors.New("blob larger than MaxBlobSize")
)

// MaxBlobSize is the largest blob rfs's codec can produce, and so the most
// any store read returns: a 512 KiB block whose snappy encoding expands as
// much as snappy allows (32 + n + n/6 bytes, golang/snappy's MaxEncodedLen)
// plus the 16-byte AES-GCM tag. pkg/flist's tests check it against the
// codec.
const MaxBlobSize = 32 + blockSize + blockSize/6 + 16

// blockSize is rfs's block size (flist.BlockSize; store cannot import it).
const blockSize = 512 * 1024

// Store is a blob store addressed by blob id (the BLAKE2b-256 of the
// encrypted blob). Implementations are safe for concurrent use.
type Store interface {
	// Get returns the blob stored under id, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id []byte) ([]byte, error)
	// Set stores blob under id, replacing any previous blob atomically.
	Set(ctx context.Context, id, blob []byte) error
	// Exists reports whether the store holds a blob under id.
	Exists(ctx context.Context, id []byte) (bool, error)
	// Routes are the rows an flist records so readers find this store again.
	// URLs are returned as configured, credentials included; callers strip
	// them (StripPassword) before writing them anywhere.
	Routes() []Route
}

// Syncer is implemented by stores whose Set returns before the blob is
// durable (a dir store leaves it to the page cache). Sync makes durable
// every blob whose Set returned before the call. The rule for writers
// (flist.Pack keeps it): sync the store before committing an flist that
// names its blobs, or a crash could leave a committed flist whose blobs
// are lost.
type Syncer interface {
	Sync(ctx context.Context) error
}

// Sync syncs s if it is a Syncer.
func Sync(ctx context.Context, s Store) error {
	if sy, ok := s.(Syncer); ok {
		return sy.Sync(ctx)
	}
	return nil
}

// Local is implemented by stores that may write to this machine's file
// systems (a dir store). A writer gains nothing from more Sets in flight
// than it has CPUs there: a Set costs CPU (the copy into the file) more
// than waiting.
type Local interface {
	// Local reports whether every Set writes to this machine's file
	// systems, and whether such a write waits for a device (a disk)
	// rather than only copying into memory (tmpfs).
	Local() (local, waits bool)
}

// IsLocal reports whether s writes only to this machine's file systems,
// and whether those writes wait for a device.
func IsLocal(s Store) (local, waits bool) {
	if l, ok := s.(Local); ok {
		return l.Local()
	}
	return false, false
}

// Route is one row of an flist's route table: blobs whose id[0] lies in
// [Start, End] (inclusive) live in the store at URL.
type Route struct {
	Start, End uint8
	URL        string
}

// Open returns the store a single URL names (no range prefix):
//
//	dir:///abs/path
//	s3://KEY:SECRET@HOST:PORT/BUCKET[/PREFIX][?region=R]   (s3s:// for TLS)
//	http(s)://HOST[:PORT][/PATH]                            (read-only)
//
// zdb:// and server:// answer with an error wrapping ErrNotSupported.
// Network stores get the default timeouts and no route policy.
func Open(rawURL string) (Store, error) { return OpenWith(rawURL, Options{}) }

// OpenWith is Open with timeouts and, for routes read from an flist, a
// route policy (checked on the URL now and on every address dialled).
func OpenWith(rawURL string, opt Options) (Store, error) {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("store %q: missing scheme: %w", redact.MaskURL(rawURL), ErrInvalidURL)
	}
	switch strings.ToLower(scheme) {
	case "dir":
		return openDir(rawURL, opt)
	case "s3", "s3s":
		return openS3(rawURL, opt)
	case "http", "https":
		return openHTTP(rawURL, opt)
	case "zdb", "server":
		return nil, fmt.Errorf("store %s: %s:// stores are %w (use dir://, s3://, s3s:// or http(s)://)",
			redact.MaskURL(rawURL), scheme, ErrNotSupported)
	default:
		return nil, fmt.Errorf("store %s: unknown scheme %q: %w", redact.MaskURL(rawURL), scheme, ErrNotSupported)
	}
}

// readBlob reads a blob of at most MaxBlobSize bytes from r; size is the
// length the source announces, or -1.
func readBlob(r io.Reader, size int64) ([]byte, error) {
	if size > MaxBlobSize {
		return nil, fmt.Errorf("%d bytes: %w", size, ErrTooLarge)
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxBlobSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBlobSize {
		return nil, fmt.Errorf("more than %d bytes: %w", MaxBlobSize, ErrTooLarge)
	}
	return b, nil
}

// Hex is the lowercase hex name stores use for a blob id.
func Hex(id []byte) string { return hex.EncodeToString(id) }

var errEmptyID = errors.New("empty blob id")

func checkID(id []byte) error {
	if len(id) == 0 {
		return errEmptyID
	}
	return nil
}

// StripPassword removes the password from a URL's user info and keeps the
// user name, as rfs does for the routes it writes into an flist
// (s3://user:pw@h:9000/b?region=r becomes s3://user@h:9000/b?region=r). A URL
// without a password is returned unchanged, byte for byte.
func StripPassword(rawURL string) (string, error) {
	s, ok := redact.StripPassword(rawURL)
	if !ok {
		return "", fmt.Errorf("store %s: %w", redact.MaskURL(rawURL), ErrInvalidURL)
	}
	return s, nil
}
