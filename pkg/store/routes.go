package store

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
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
			return fmt.Errorf("store %s: %w", mask(rawURL), ErrInvalidURL)
		}
	}
	return err
}

// secretQuery matches query parameter names whose values are credentials
// (server://...?token=JWT, presigned signatures).
var secretQuery = regexp.MustCompile(`(?i)token|secret|pass|key|sig|credential|auth|session`)

// Mask returns a route URL fit for display: a password becomes "***" (the
// user name, an S3 access key id, stays, so two credentials can be told
// apart), as do the values of query parameters that look like secrets. A
// URL that does not parse loses all its user information.
func Mask(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Opaque != "" && strings.Contains(u.Opaque, "@")) {
		return mask(rawURL)
	}
	out := rawURL
	if _, has := u.User.Password(); u.User != nil && has {
		scheme, rest, _ := strings.Cut(rawURL, "://")
		authEnd := strings.IndexAny(rest, "/?#")
		if authEnd < 0 {
			authEnd = len(rest)
		}
		at := strings.LastIndex(rest[:authEnd], "@")
		if at < 0 {
			return mask(rawURL)
		}
		out = scheme + "://" + url.User(u.User.Username()).String() + ":***" + rest[at:]
	}
	base, query, hasQuery := strings.Cut(out, "?")
	if !hasQuery {
		return out
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	parts := strings.Split(query, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err != nil || secretQuery.MatchString(name) {
			parts[i] = k + "=***"
		}
	}
	out = base + "?" + strings.Join(parts, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}
