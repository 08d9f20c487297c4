package store

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/redact"
)

// ConfRoute is the STORES item that stands for the runtime route of
// config/rfs.conf (S3Config.RouteURL), so rotated read credentials reach an
// flist without being typed on a command line.
const ConfRoute = "rfs.conf"

// ParseRoutes parses a comma-separated STORES list ("[xx-yy=]URL,...")
// into routes without opening the stores. When confRoute is not nil, an
// item whose URL is ConfRoute ("rfs.conf", "00-7f=rfs.conf") takes the URL
// confRoute returns.
func ParseRoutes(stores string, confRoute func() (string, error)) ([]Route, error) {
	var routes []Route
	for i, spec := range strings.Split(stores, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			return nil, fmt.Errorf("stores list entry %d is empty: %w", i+1, ErrInvalidURL)
		}
		rt, err := ParseSpec(spec)
		if err != nil {
			return nil, err
		}
		if confRoute != nil && rt.URL == ConfRoute {
			if rt.URL, err = confRoute(); err != nil {
				return nil, err
			}
		}
		routes = append(routes, rt)
	}
	return routes, nil
}

// CheckRoute reports whether a route URL is one rfs can read from: a
// well-formed URL of a store kind rfs knows. zdb:// and server:// pass
// (rfs on a node reads them) although this package does not open them.
func CheckRoute(rawURL string) error {
	_, err := Open(rawURL)
	if errors.Is(err, ErrNotSupported) {
		scheme, _, _ := strings.Cut(rawURL, "://")
		switch strings.ToLower(scheme) {
		case "zdb", "server":
			if _, perr := url.Parse(rawURL); perr == nil {
				return nil
			}
			return fmt.Errorf("store %s: %w", redact.MaskURL(rawURL), ErrInvalidURL)
		}
	}
	return err
}
