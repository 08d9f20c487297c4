package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/minio/minio-go/v7"
)

// BatchExister is implemented by stores that can answer whether they hold
// many blobs more cheaply than one Exists call each. ExistsAll returns an
// answer for the ids it could settle cheaply; ids missing from the map are
// unknown and need Exists.
type BatchExister interface {
	ExistsAll(ctx context.Context, ids [][]byte) (map[string]bool, error)
}

// listBudget bounds a listing to one page (1000 keys) per this many ids,
// plus one: past that, HEAD requests for the rest are cheaper.
const listBudget = 100

// ExistsAll lists the store's objects from the smallest id on (ListObjectsV2
// returns 1000 keys per request and in order, so every id up to the last
// listed key is settled, present or not) until the ids are all settled or
// the page budget is spent. Results are keyed by Hex(id).
func (s *S3) ExistsAll(ctx context.Context, ids [][]byte) (map[string]bool, error) {
	if len(ids) == 0 {
		return map[string]bool{}, nil
	}
	want := make([]string, 0, len(ids))
	for _, id := range ids {
		want = append(want, Hex(id))
	}
	sort.Strings(want)
	want = slices.Compact(want)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Keys are 64 hex digits: starting after the first id's 63-digit
	// prefix includes that id.
	first := want[0]
	opts := minio.ListObjectsOptions{Prefix: s.prefix, StartAfter: s.prefix + first[:len(first)-1], Recursive: true, MaxKeys: 1000}
	maxKeys := (len(want)/listBudget + 1) * 1000
	out := make(map[string]bool, len(want))
	next, seen := 0, 0 // next unsettled index in want
	for obj := range s.client.ListObjects(ctx, s.bucket, opts) {
		if obj.Err != nil {
			if errors.Is(obj.Err, context.Canceled) {
				break
			}
			return nil, s.wrap("list", s.prefix, obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, s.prefix)
		for next < len(want) && want[next] < name {
			out[want[next]] = false
			next++
		}
		if next < len(want) && want[next] == name {
			out[name] = true
			next++
		}
		seen++
		if next == len(want) || seen >= maxKeys {
			cancel()
			break
		}
	}
	if ctx.Err() == nil { // the listing ended: nothing after the last key exists
		for ; next < len(want); next++ {
			out[want[next]] = false
		}
	}
	return out, nil
}

// ExistsAll settles an id when every store its route points to settled it
// (present only if all of them have it), using the stores that implement
// BatchExister.
func (r *Router) ExistsAll(ctx context.Context, ids [][]byte) (map[string]bool, error) {
	type vote struct{ yes, total, settled int }
	votes := map[string]*vote{}
	for _, id := range ids {
		stores, err := r.match(id)
		if err != nil {
			return nil, err
		}
		votes[Hex(id)] = &vote{total: len(stores)}
	}
	for _, rt := range r.routes {
		b, ok := rt.store.(BatchExister)
		if !ok {
			continue
		}
		var mine [][]byte
		for h := range votes {
			if id, _ := hex.DecodeString(h); rt.start <= id[0] && id[0] <= rt.end {
				mine = append(mine, id)
			}
		}
		if len(mine) == 0 {
			continue
		}
		got, err := b.ExistsAll(ctx, mine)
		if err != nil {
			return nil, fmt.Errorf("router: %w", err)
		}
		for h, ok := range got {
			v := votes[h]
			v.settled++
			if ok {
				v.yes++
			}
		}
	}
	out := map[string]bool{}
	for h, v := range votes {
		if v.settled == v.total {
			out[h] = v.yes == v.total
		}
	}
	return out, nil
}
