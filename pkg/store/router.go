package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/threefoldtech/zosbuilder/internal/redact"
)

// Router spreads blobs over stores by the first byte of the blob id. Routes
// may overlap: overlapping ranges replicate (Set writes every matching store),
// disjoint ranges shard.
type Router struct {
	routes []routed
}

type routed struct {
	start, end uint8
	store      Store
}

// Add routes blobs whose id[0] lies in [start, end] to s.
func (r *Router) Add(start, end uint8, s Store) {
	r.routes = append(r.routes, routed{start: start, end: end, store: s})
}

// Len is the number of routes.
func (r *Router) Len() int { return len(r.routes) }

func (r *Router) match(id []byte) ([]Store, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var out []Store
	for _, rt := range r.routes {
		if rt.start <= id[0] && id[0] <= rt.end {
			out = append(out, rt.store)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("blob %s: %w", Hex(id), ErrNotRoutable)
	}
	return out, nil
}

// Get tries each matching store in route order until one returns the blob.
// When all fail it returns their errors joined; errors.Is(err, ErrNotFound)
// holds only when every store answered "not found".
func (r *Router) Get(ctx context.Context, id []byte) ([]byte, error) {
	stores, err := r.match(id)
	if err != nil {
		return nil, err
	}
	var errs []error
	allNotFound := true
	for _, s := range stores {
		b, err := s.Get(ctx, id)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		allNotFound = allNotFound && errors.Is(err, ErrNotFound)
		errs = append(errs, err)
	}
	switch {
	case len(errs) == 1:
		return nil, errs[0]
	case allNotFound:
		return nil, fmt.Errorf("blob %s in none of %d stores: %w", Hex(id), len(errs), ErrNotFound)
	default:
		return nil, errors.Join(errs...)
	}
}

// Exists reports whether every matching store holds the blob, so that a pack
// skipping existing blobs still fills a replica that lacks one.
func (r *Router) Exists(ctx context.Context, id []byte) (bool, error) {
	stores, err := r.match(id)
	if err != nil {
		return false, err
	}
	for _, s := range stores {
		ok, err := s.Exists(ctx, id)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// Set writes the blob to every matching store; the first error aborts.
func (r *Router) Set(ctx context.Context, id, blob []byte) error {
	stores, err := r.match(id)
	if err != nil {
		return err
	}
	for _, s := range stores {
		if err := s.Set(ctx, id, blob); err != nil {
			return err
		}
	}
	return nil
}

// Sync implements Syncer: it syncs every store of the router that needs it.
func (r *Router) Sync(ctx context.Context) error {
	var errs []error
	for _, rt := range r.routes {
		errs = append(errs, Sync(ctx, rt.store))
	}
	return errors.Join(errs...)
}

// Local implements Local: a router is local when all its stores are, and
// its writes wait when any of theirs do.
func (r *Router) Local() (local, waits bool) {
	for _, rt := range r.routes {
		l, w := IsLocal(rt.store)
		if !l {
			return false, false
		}
		waits = waits || w
	}
	return len(r.routes) > 0, waits
}

// Routes implements Store: one row per route, in the order they were added,
// with the router's range.
func (r *Router) Routes() []Route {
	var out []Route
	for _, rt := range r.routes {
		for _, sub := range rt.store.Routes() {
			out = append(out, Route{Start: rt.start, End: rt.end, URL: sub.URL})
		}
	}
	return out
}

// rangeSpec is rfs's `-s` grammar: lowercase hex only ("00-FF=" is not a range).
var rangeSpec = regexp.MustCompile(`^([0-9a-f]{2})-([0-9a-f]{2})=(.+)$`)

// ParseSpec parses one `[xx-yy=]URL` store spec into a route.
func ParseSpec(spec string) (Route, error) {
	m := rangeSpec.FindStringSubmatch(spec)
	if m == nil {
		return Route{Start: 0, End: 255, URL: spec}, nil
	}
	lo, _ := strconv.ParseUint(m[1], 16, 8)
	hi, _ := strconv.ParseUint(m[2], 16, 8)
	if lo > hi {
		return Route{}, fmt.Errorf("store spec %s: range %s-%s is empty: %w", redact.MaskURL(spec), m[1], m[2], ErrInvalidURL)
	}
	return Route{Start: uint8(lo), End: uint8(hi), URL: m[3]}, nil
}

// Parse parses a comma-separated STORES list ("[xx-yy=]URL,...", ranges in
// lowercase hex on id[0]; no range means 00-ff) and opens every store.
func Parse(stores string) (*Router, error) {
	routes, err := ParseRoutes(stores, nil)
	if err != nil {
		return nil, err
	}
	return OpenRoutes(routes)
}

// OpenRoutes opens a router over routes with Open.
func OpenRoutes(routes []Route) (*Router, error) { return OpenRoutesWith(routes, Options{}) }

// OpenRoutesWith opens a router over routes with OpenWith: for routes read
// from an flist, with a route policy.
func OpenRoutesWith(routes []Route, opt Options) (*Router, error) {
	if len(routes) == 0 {
		return nil, fmt.Errorf("no store routes: %w", ErrInvalidURL)
	}
	r := &Router{}
	for _, rt := range routes {
		s, err := OpenWith(rt.URL, opt)
		if err != nil {
			return nil, err
		}
		r.Add(rt.Start, rt.End, s)
	}
	return r, nil
}
