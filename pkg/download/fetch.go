package download

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
)

// maxBackoff caps the wait between two attempts.
const maxBackoff = 30 * time.Second

// response is what an opened URL tells about its body.
type response struct {
	status       int // 200, 206 (resumed) or 304 (not modified)
	size         int64
	etag         string
	lastModified string
}

// validators are the conditional-request values remembered beside an
// unpinned cached file.
type validators struct {
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// partial is a download in progress: the temporary file, how much of it is
// written and the running hash of what is written, so a retry can resume
// with a Range request instead of starting over.
type partial struct {
	file    *os.File
	hash    hash.Hash
	written int64
	etag    string
	lastMod string
}

func (p *partial) reset() error {
	if err := p.file.Truncate(0); err != nil {
		return err
	}
	if _, err := p.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	p.hash.Reset()
	p.written = 0
	return nil
}

func (f *Fetcher) fetchFile(ctx context.Context, u *url.URL, safe, dst string, want Checksum) error {
	var cached validators
	if want.IsZero() {
		cached = readValidators(dst)
	}
	// A pinned download is checked again whenever it is reused; an unpinned
	// one is trusted on a 304 answer, so it is synced before its
	// validators vouch for it (see fsutil).
	var opts []fsutil.Option
	if want.IsZero() {
		opts = append(opts, fsutil.Sync())
	}
	tmp, err := fsutil.Create(dst, 0o644, opts...)
	if err != nil {
		return fmt.Errorf("download %s: %w", safe, err)
	}
	defer tmp.Cleanup()

	var bar *progress.Bar
	if f.opt.Progress != nil {
		bar = progress.Start("download "+filepath.Base(dst), 0, progress.Bytes, *f.opt.Progress)
		defer bar.Finish()
	}
	p := &partial{file: tmp.File, hash: want.newHash()}
	notModified := false
	err = f.retry(ctx, safe, func() error {
		notModified = false
		hdr, err := p.requestHeader(cached)
		if err != nil {
			return err
		}
		rc, resp, err := f.open(ctx, u, hdr)
		if err != nil {
			return err
		}
		defer rc.Close()
		switch resp.status {
		case http.StatusNotModified:
			if cached == (validators{}) {
				return errors.New("server answered 304 Not Modified to an unconditional request")
			}
			notModified = true
			return nil
		case http.StatusOK:
			if err := p.reset(); err != nil {
				return err
			}
			p.etag, p.lastMod = resp.etag, resp.lastModified
		}
		return p.copyFrom(rc, resp, bar)
	})
	if err != nil {
		return fmt.Errorf("download %s: %w", safe, err)
	}
	if notModified {
		f.log.WithField("url", safe).Debug("cached download not modified")
		return nil
	}
	got := hex.EncodeToString(p.hash.Sum(nil))
	if !want.IsZero() && got != want.Hex {
		return fmt.Errorf("download %s: %w: expected %s %s, got %s", safe, ErrChecksum, want.Algo, want.Hex, got)
	}
	if err := tmp.Commit(); err != nil {
		return fmt.Errorf("download %s: %w", safe, err)
	}
	if want.IsZero() {
		if err := writeValidators(dst, validators{ETag: p.etag, LastModified: p.lastMod}); err != nil {
			return fmt.Errorf("download %s: %w", safe, err)
		}
	}
	return nil
}

// requestHeader asks for the rest of a partial download, or for the whole
// file only if it changed since the cached copy.
func (p *partial) requestHeader(cached validators) (http.Header, error) {
	hdr := http.Header{}
	if p.written > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", p.written))
		// If-Range makes the server send the whole file when it changed
		// between the attempts, rather than the tail of another version.
		switch {
		case p.etag != "":
			hdr.Set("If-Range", p.etag)
		case p.lastMod != "":
			hdr.Set("If-Range", p.lastMod)
		default:
			hdr.Del("Range")
			return hdr, p.reset()
		}
		return hdr, nil
	}
	if cached.ETag != "" {
		hdr.Set("If-None-Match", cached.ETag)
	}
	if cached.LastModified != "" {
		hdr.Set("If-Modified-Since", cached.LastModified)
	}
	return hdr, nil
}

func (p *partial) copyFrom(rc io.Reader, resp response, bar *progress.Bar) error {
	w := io.MultiWriter(p.file, p.hash, bar.Writer())
	n, err := io.Copy(w, rc)
	p.written += n
	if err != nil {
		return transient(err)
	}
	if resp.size >= 0 && p.written != resp.size {
		return transient(fmt.Errorf("short body: %d of %d bytes", p.written, resp.size))
	}
	return nil
}

// open starts reading u. A Range header is honoured by both schemes; the
// response status says whether it was (206) or the body is whole (200).
func (f *Fetcher) open(ctx context.Context, u *url.URL, hdr http.Header) (io.ReadCloser, response, error) {
	if u.Scheme == "file" {
		return openFile(u, hdr)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, response{}, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := f.opt.Client.Do(req)
	if err != nil {
		// url.Error prints the URL, query secrets included.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if ctx.Err() != nil {
			return nil, response{}, ctx.Err()
		}
		return nil, response{}, transient(err)
	}
	r := response{status: resp.StatusCode, etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNotModified:
		r.size = resp.ContentLength
		return resp.Body, r, nil
	case http.StatusPartialContent:
		if !rangeStartsAt(resp.Header.Get("Content-Range"), hdr.Get("Range")) {
			resp.Body.Close()
			return nil, response{}, errors.New("server answered a range request with another range")
		}
		r.size = -1
		if resp.ContentLength >= 0 {
			r.size = resp.ContentLength + rangeStart(hdr.Get("Range"))
		}
		return resp.Body, r, nil
	}
	resp.Body.Close()
	err = &StatusError{Code: resp.StatusCode}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests {
		return nil, response{}, transient(err)
	}
	return nil, response{}, err
}

func openFile(u *url.URL, hdr http.Header) (io.ReadCloser, response, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, response{}, fmt.Errorf("file URL with host %q", u.Host)
	}
	fh, err := os.Open(u.Path)
	if err != nil {
		return nil, response{}, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, response{}, err
	}
	r := response{status: http.StatusOK, size: st.Size()}
	if off := rangeStart(hdr.Get("Range")); off > 0 {
		if _, err := fh.Seek(off, io.SeekStart); err != nil {
			fh.Close()
			return nil, response{}, err
		}
		r.status = http.StatusPartialContent
	}
	return fh, r, nil
}

// rangeStart returns N of "bytes=N-", or 0.
func rangeStart(rangeHdr string) int64 {
	s, ok := strings.CutPrefix(rangeHdr, "bytes=")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(s, "-"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// rangeStartsAt checks a Content-Range "bytes START-END/TOTAL" against the
// requested start.
func rangeStartsAt(contentRange, rangeHdr string) bool {
	s, ok := strings.CutPrefix(contentRange, "bytes ")
	if !ok {
		return false
	}
	start, _, ok := strings.Cut(s, "-")
	return ok && start == strconv.FormatInt(rangeStart(rangeHdr), 10)
}

// transientError marks a failure worth retrying.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

func transient(err error) error { return transientError{err} }

// retry runs fn until it succeeds, fails with an error not marked transient,
// the context ends, or the retries are used up.
func (f *Fetcher) retry(ctx context.Context, safe string, fn func() error) error {
	wait := f.opt.Backoff
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		var te transientError
		if !errors.As(err, &te) || ctx.Err() != nil {
			return err
		}
		if attempt >= f.opt.Retries {
			return fmt.Errorf("after %d attempts: %w", attempt+1, err)
		}
		f.log.WithFields(map[string]any{"url": safe, "attempt": attempt + 1, "error": err.Error()}).
			Warnf("download failed, retrying in %s", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, maxBackoff)
	}
}

func validatorsPath(dst string) string { return dst + ".validators" }

func readValidators(dst string) validators {
	var v validators
	if _, err := os.Stat(dst); err != nil {
		return v
	}
	b, err := os.ReadFile(validatorsPath(dst))
	if err != nil || json.Unmarshal(b, &v) != nil {
		return validators{}
	}
	return v
}

func writeValidators(dst string, v validators) error {
	p := validatorsPath(dst)
	if v == (validators{}) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fsutil.WriteFile(p, b, 0o644, fsutil.Sync())
}
