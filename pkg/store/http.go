package store

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
)

// HTTP is a read-only store served over HTTP(S), typically a dir store behind
// a web server. It reads <base>/<hex[0:2]>/<hex>, then the flat <base>/<hex>.
type HTTP struct {
	base   *url.URL
	url    string
	client *http.Client
}

func openHTTP(rawURL string, opt Options) (*HTTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("store %s: %w", redact.MaskURL(rawURL), ErrInvalidURL)
	}
	if opt.Policy != nil {
		if err := opt.Policy.checkHost(u.Hostname()); err != nil {
			return nil, fmt.Errorf("store %s: %w", redact.MaskURL(rawURL), err)
		}
	}
	return &HTTP{base: u, url: rawURL, client: httpclient.NewClient(opt.transport(0))}, nil
}

func (h *HTTP) candidates(id []byte) []string {
	name := Hex(id)
	base := *h.base
	// Trim the trailing slash so http://h/store/ does not become
	// http://h/store//ab/... (rfs's url-crate join does exactly that).
	prefix := strings.TrimSuffix(base.Path, "/")
	sharded, flat := base, base
	sharded.Path = prefix + "/" + name[:2] + "/" + name
	flat.Path = prefix + "/" + name
	sharded.RawPath, flat.RawPath = "", ""
	return []string{sharded.String(), flat.String()}
}

// do sends method to each candidate URL until one is not a 404. It returns
// the open response of a 200, or (nil, nil) when every candidate was 404.
func (h *HTTP) do(ctx context.Context, method string, id []byte) (*http.Response, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	for _, u := range h.candidates(id) {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, fmt.Errorf("http store %s: %w", redact.MaskURL(h.url), ErrInvalidURL)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("http store %s: %s blob %s: %w", redact.MaskURL(h.url), method, Hex(id), unwrapURLError(err))
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return resp, nil
		case resp.StatusCode == http.StatusNotFound:
			resp.Body.Close()
			continue
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			resp.Body.Close()
			return nil, fmt.Errorf("http store %s: %s blob %s: %s: %w", redact.MaskURL(h.url), method, Hex(id), resp.Status, ErrAuth)
		default:
			resp.Body.Close()
			return nil, fmt.Errorf("http store %s: %s blob %s: unexpected %s", redact.MaskURL(h.url), method, Hex(id), resp.Status)
		}
	}
	return nil, nil
}

// unwrapURLError drops the *url.Error layer, whose text repeats the request
// URL (and with it any user info the base URL carries).
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// Get implements Store.
func (h *HTTP) Get(ctx context.Context, id []byte) ([]byte, error) {
	resp, err := h.do(ctx, http.MethodGet, id)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, fmt.Errorf("http store %s: blob %s: %w", redact.MaskURL(h.url), Hex(id), ErrNotFound)
	}
	defer resp.Body.Close()
	b, err := readBlob(resp.Body, resp.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("http store %s: read blob %s: %w", redact.MaskURL(h.url), Hex(id), unwrapURLError(err))
	}
	return b, nil
}

// Exists implements Store with HEAD requests.
func (h *HTTP) Exists(ctx context.Context, id []byte) (bool, error) {
	resp, err := h.do(ctx, http.MethodHead, id)
	if err != nil || resp == nil {
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// Set implements Store; http stores are read-only.
func (h *HTTP) Set(context.Context, []byte, []byte) error {
	return fmt.Errorf("http store %s: %w", redact.MaskURL(h.url), ErrReadOnly)
}

// Routes implements Store.
func (h *HTTP) Routes() []Route { return []Route{{Start: 0, End: 255, URL: h.url}} }
