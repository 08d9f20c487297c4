// Package download is the one way the build fetches anything from the
// network: HTTP(S) and file:// URLs, a cache keyed by URL and checksum,
// sha256 verification before a file is handed out, downloads to a temporary
// name renamed into place, retries with backoff on transient errors, and
// errors that name the URL without its credentials.
package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
)

// ErrChecksum is wrapped by the error returned when a file's sha256 differs
// from the pinned one.
var ErrChecksum = errors.New("checksum mismatch")

// ErrStatus is wrapped by the error returned for an HTTP status that is not a
// success; a *StatusError carries the code.
var ErrStatus = errors.New("unexpected HTTP status")

// StatusError is an HTTP answer other than 200 (or 206/304 where asked for).
type StatusError struct {
	Code int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %d %s", ErrStatus, e.Code, http.StatusText(e.Code))
}

// Unwrap lets errors.Is(err, ErrStatus) match.
func (e *StatusError) Unwrap() error { return ErrStatus }

// MaxBytes bounds what Bytes reads into memory: index documents are small,
// and a misconfigured URL must not exhaust memory.
const MaxBytes = 256 << 20

// Options configure a Fetcher. The zero value (apart from CacheDir, which
// File needs) is sensible: a client with bounded waits, 3 retries, no
// progress output.
type Options struct {
	// CacheDir holds downloaded files; File needs it, Bytes does not.
	CacheDir string
	// Log receives retry warnings and cache hits; nil is silent.
	Log logrus.FieldLogger
	// Retries is how many times a transient failure is retried after the
	// first attempt: 0 means 3, a negative value means none.
	Retries int
	// Client makes the requests; nil means a client with the bounded waits
	// of Timeouts (package httpclient).
	Client *http.Client
	// Timeouts bound the connect, TLS handshake, response headers and every
	// read of the default client; zero fields take httpclient's defaults.
	Timeouts httpclient.Timeouts
	// Backoff is the wait before the first retry, doubled for each next one
	// (capped at 30 s); 0 means 1 s.
	Backoff time.Duration
	// Progress, when set, shows a progress bar (terminal) or periodic lines
	// for each file download; nil shows nothing.
	Progress *progress.Options
}

// Fetcher downloads files. It is safe for concurrent use; concurrent calls
// for the same file download it twice and the last rename wins, which is
// harmless since both copies are verified.
type Fetcher struct {
	opt Options
	log logrus.FieldLogger
}

// New returns a Fetcher.
func New(opt Options) *Fetcher {
	if opt.Client == nil {
		opt.Client = httpclient.NewClient(httpclient.Options{Timeouts: opt.Timeouts})
	}
	switch {
	case opt.Retries == 0:
		opt.Retries = 3
	case opt.Retries < 0:
		opt.Retries = 0
	}
	if opt.Backoff <= 0 {
		opt.Backoff = time.Second
	}
	return &Fetcher{opt: opt, log: logging.OrDiscard(opt.Log)}
}

// File returns the path of a local, verified copy of rawURL. checksum pins
// the file (see ParseChecksum: a sha256 hex, or "md5:<hex>" where upstream
// publishes only that); a cached copy whose digest matches is returned
// without any request, and a download whose digest differs is deleted and
// reported with an error wrapping ErrChecksum. With checksum empty the
// cached copy is revalidated with a conditional request (ETag /
// Last-Modified). The returned file belongs to the cache: treat it as
// read-only.
func (f *Fetcher) File(ctx context.Context, rawURL, checksum string) (string, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return "", err
	}
	safe := redact.MaskURL(rawURL)
	want, err := ParseChecksum(checksum)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", safe, err)
	}
	if f.opt.CacheDir == "" {
		return "", fmt.Errorf("download %s: no cache directory configured", safe)
	}
	dst, err := f.cachePath(u, rawURL, want.String())
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("download %s: %w", safe, err)
	}
	if !want.IsZero() {
		ok, err := f.cachedMatches(dst, want)
		if err != nil {
			return "", fmt.Errorf("download %s: %w", safe, err)
		}
		if ok {
			f.log.WithField("url", safe).Debug("using cached download")
			return dst, nil
		}
	}
	if err := f.fetchFile(ctx, u, safe, dst, want); err != nil {
		return "", err
	}
	return dst, nil
}

// Bytes returns the body of rawURL, uncached, for small index documents
// (latest-releases.yaml, sha256sums.asc, APKINDEX.tar.gz). Bodies larger than
// MaxBytes are an error.
func (f *Fetcher) Bytes(ctx context.Context, rawURL string) ([]byte, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	safe := redact.MaskURL(rawURL)
	var body []byte
	err = f.retry(ctx, safe, func() error {
		rc, _, err := f.open(ctx, u, nil)
		if err != nil {
			return err
		}
		defer rc.Close()
		body, err = io.ReadAll(io.LimitReader(rc, MaxBytes+1))
		if err != nil {
			return transient(err)
		}
		if len(body) > MaxBytes {
			return fmt.Errorf("body larger than %d bytes", MaxBytes)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", safe, err)
	}
	return body, nil
}

func parseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse quotes the input, credentials included.
		return nil, fmt.Errorf("download %s: invalid URL", redact.MaskURL(rawURL))
	}
	switch u.Scheme {
	case "http", "https", "file":
		return u, nil
	}
	return nil, fmt.Errorf("download %s: unsupported URL scheme %q", redact.MaskURL(rawURL), u.Scheme)
}

// cachePath keys the cache by the full URL (credentials included, since two
// credentials may see two different files) and the pinned checksum as
// written (Checksum.String: a sha256 pin and an md5 pin never share a
// file), and
// keeps the URL's base name so the cache is readable by people.
// A URL naming no file (an empty path or "/") is cached as "download"; a
// last element that CheckName refuses ("..", ".", a backslash, NUL) is an
// error: joined to the cache folder it would name the folder itself or a
// path outside it.
func (f *Fetcher) cachePath(u *url.URL, rawURL, want string) (string, error) {
	sum := sha256.Sum256([]byte(rawURL + "\x00" + want))
	base := "download"
	if strings.Trim(u.Path, "/") != "" {
		base = path.Base(u.Path)
	}
	if err := CheckName(base); err != nil {
		return "", fmt.Errorf("download %s: the URL's file name: %w", redact.MaskURL(rawURL), err)
	}
	return filepath.Join(f.opt.CacheDir, hex.EncodeToString(sum[:12]), base), nil
}

// cachedMatches reports whether dst exists with the wanted hash. A cached file
// with a wrong hash (corrupted disk, edited by hand) is removed so it is
// fetched again.
func (f *Fetcher) cachedMatches(dst string, want Checksum) (bool, error) {
	got, err := want.hashFile(dst)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if got == want.Hex {
		return true, nil
	}
	f.log.WithField("file", dst).Warn("cached download has a wrong checksum; fetching it again")
	return false, os.Remove(dst)
}

// CheckName refuses a file name that came from a URL or an index (a
// mirror's latest-releases.yaml, an APKINDEX) and is to become a local file
// name: it must not be empty, "." or "..", nor hold '/', '\\' or NUL,
// any of which would name another folder or a path outside the one meant.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("unsafe file name %q", name)
	}
	return nil
}

// HashFile returns the lowercase hex sha256 of the file at path.
func HashFile(path string) (string, error) {
	return Checksum{Algo: "sha256"}.hashFile(path)
}
