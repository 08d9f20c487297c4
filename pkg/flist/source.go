package flist

import (
	"context"
	"fmt"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// source is where a reader of an flist gets its blobs: an explicit store,
// or the flist's own routes under a route policy.
type source struct {
	store    store.Store
	routes   store.RoutePolicy
	timeouts httpclient.Timeouts
	log      logrus.FieldLogger
}

// open returns the explicit store, or a router over the flist's routes,
// opened under the route policy (an flist is someone else's file, and its
// routes say what to connect to). It logs the routes used in one line.
func (src source) open(ctx context.Context, r *Reader) (store.Store, error) {
	s := src.store
	if s == nil {
		routes, err := r.Routes(ctx)
		if err != nil {
			return nil, err
		}
		router, err := store.OpenRoutesWith(routes, store.Options{Timeouts: src.timeouts, Policy: &src.routes})
		if err != nil {
			return nil, fmt.Errorf("flist %s: open its stores: %w", r.path, err)
		}
		s = router
	}
	if src.log != nil {
		var used []string
		for _, rt := range s.Routes() {
			used = append(used, fmt.Sprintf("%02x-%02x=%s", rt.Start, rt.End, redact.MaskURL(rt.URL)))
		}
		src.log.Infof("%s: blobs from %s", r.path, strings.Join(used, ", "))
	}
	return s, nil
}
