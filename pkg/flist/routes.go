package flist

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// ErrRoutes is wrapped by the errors of a route edit that would leave the
// flist unreadable or say nothing (no route matched, a duplicate row).
var ErrRoutes = errors.New("invalid route edit")

// WriteRoutes prints routes as `rfs config -m FL store list` does ("routes:"
// then one "\trange:[START-END] store:URL" line per route, nothing when
// there is none), with passwords and secret query values masked
// (store.Mask): a listing never shows a secret.
func WriteRoutes(w io.Writer, routes []store.Route) error {
	if len(routes) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("routes:\n")
	for _, r := range routes {
		fmt.Fprintf(&b, "\t%s\n", routeString(r))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func routeString(r store.Route) string {
	return fmt.Sprintf("range:[%d-%d] store:%s", r.Start, r.End, redact.MaskURL(r.URL))
}

// ListRoutes returns the route table of the flist at fl.
func ListRoutes(ctx context.Context, fl string) ([]store.Route, error) {
	r, err := Open(fl)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Routes(ctx)
}

// AddRoutes appends routes to the flist at fl (rfs config store add), e.g.
// an HTTPS mirror of the blobs, and returns the new table. A route already
// in the table is an error.
func AddRoutes(ctx context.Context, fl string, add []store.Route) ([]store.Route, error) {
	return EditRoutes(ctx, fl, func(routes []store.Route) ([]store.Route, error) {
		for _, a := range add {
			if slices.Contains(routes, a) {
				return nil, fmt.Errorf("%w: the flist already has the route %s", ErrRoutes, routeString(a))
			}
			routes = append(routes, a)
		}
		return routes, nil
	})
}

// SetRoutes replaces the whole route table of the flist at fl, e.g. to
// rotate the read credentials a route carries.
func SetRoutes(ctx context.Context, fl string, routes []store.Route) ([]store.Route, error) {
	return EditRoutes(ctx, fl, func([]store.Route) ([]store.Route, error) { return routes, nil })
}

// DeleteRoutes removes the routes whose URL is storeURL, as written in the
// flist or as WriteRoutes shows it (password masked, so a listing can be
// pasted back), and returns the new table (rfs config store delete -s).
// Matching no route is an error.
func DeleteRoutes(ctx context.Context, fl, storeURL string) ([]store.Route, error) {
	return EditRoutes(ctx, fl, func(routes []store.Route) ([]store.Route, error) {
		kept := slices.DeleteFunc(routes, func(r store.Route) bool {
			return r.URL == storeURL || redact.MaskURL(r.URL) == storeURL
		})
		if len(kept) == len(routes) {
			return nil, fmt.Errorf("%w: no route with the store %s (mage rfs:stores FL lists them)", ErrRoutes, redact.MaskURL(storeURL))
		}
		return kept, nil
	})
}

// EditRoutes rewrites the route table of the flist at fl with what edit
// returns for the current table, and returns the new table. Every route
// must be a URL rfs can read from (store.CheckRoute), no row may repeat,
// and every block of the flist must stay routed, or nothing is written.
// The edit is atomic: a copy is changed under a temporary name in the same
// directory and renamed over fl (a symlink is followed, not replaced); the
// file's mode and mtime are kept, so a later pack still trusts it as the
// previous flist. A WAL-mode flist (rfs v2.0.0-v2.0.2) comes out in
// journal mode DELETE, as rfs has written since v2.0.3.
func EditRoutes(ctx context.Context, fl string, edit func([]store.Route) ([]store.Route, error)) ([]store.Route, error) {
	path, err := filepath.EvalSymlinks(fl)
	if err != nil {
		return nil, fmt.Errorf("edit routes: %w", err)
	}
	before, used, err := routesAndUse(ctx, path)
	if err != nil {
		return nil, err
	}
	after, err := edit(slices.Clone(before))
	if err != nil {
		return nil, fmt.Errorf("flist %s: %w", fl, err)
	}
	if err := checkRoutes(after, used); err != nil {
		return nil, fmt.Errorf("flist %s: %w", fl, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("edit routes: %w", err)
	}
	// An flist names blobs: it is a record, synced (see fsutil).
	out, err := fsutil.Create(path, st.Mode().Perm(), fsutil.ModTime(st.ModTime()), fsutil.Sync())
	if err != nil {
		return nil, fmt.Errorf("flist %s: edit routes: %w", fl, err)
	}
	defer out.Cleanup()
	defer os.Remove(out.Name() + "-journal") // left by a failed transaction
	err = copyFile(out.File, path)
	if err == nil {
		err = writeRouteTable(ctx, out.Name(), after)
	}
	if err == nil {
		err = out.Commit()
	}
	if err != nil {
		return nil, fmt.Errorf("flist %s: edit routes: %w", fl, err)
	}
	return after, nil
}

// routesAndUse reads the route table and counts the flist's blocks by the
// first byte of their id (the byte routes are chosen by).
func routesAndUse(ctx context.Context, path string) ([]store.Route, *[256]int, error) {
	r, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	routes, err := r.Routes(ctx)
	if err != nil {
		return nil, nil, err
	}
	var used [256]int
	err = r.EachBlock(ctx, func(_ int64, b Block) error {
		used[b.ID[0]]++
		return nil
	})
	return routes, &used, err
}

func checkRoutes(routes []store.Route, used *[256]int) error {
	var covered [256]bool
	for i, r := range routes {
		if r.Start > r.End {
			return fmt.Errorf("%w: route %s: empty range", ErrRoutes, routeString(r))
		}
		if err := store.CheckRoute(r.URL); err != nil {
			return err
		}
		if slices.Contains(routes[:i], r) {
			return fmt.Errorf("%w: route %s is given twice", ErrRoutes, routeString(r))
		}
		for b := int(r.Start); b <= int(r.End); b++ {
			covered[b] = true
		}
	}
	var gaps []string
	lost := 0
	for b := 0; b < 256; b++ {
		if covered[b] {
			continue
		}
		end, n := b, used[b]
		for end+1 < 256 && !covered[end+1] {
			end++
			n += used[end]
		}
		if n > 0 {
			gaps = append(gaps, fmt.Sprintf("%02x-%02x", b, end))
			lost += n
		}
		b = end
	}
	if len(gaps) > 0 {
		return fmt.Errorf("%w: no route would cover the blocks whose id starts in %s: %d blocks could not be read",
			ErrRoutes, strings.Join(gaps, ", "), lost)
	}
	return nil
}

// copyFile copies the file at path to w.
func copyFile(w io.Writer, path string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = io.Copy(w, src)
	return err
}

// writeRouteTable replaces the route rows of the flist at path in one
// transaction. The file is untrusted: a schema with triggers is refused,
// and trusted_schema is off so no view or default can run side effects.
func writeRouteTable(ctx context.Context, path string, routes []store.Route) error {
	dsn, err := fileDSN(path, "_pragma=trusted_schema(0)&_pragma=journal_mode(DELETE)")
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	defer db.Close()
	var triggers int
	if err := db.QueryRowContext(ctx, `select count(*) from sqlite_master where type = 'trigger'`).Scan(&triggers); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if triggers > 0 {
		return fmt.Errorf("%w: it has %d trigger(s), which rfs never writes; refusing to edit it", ErrCorrupt, triggers)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `delete from route`); err != nil {
		return err
	}
	for _, r := range routes {
		if _, err := tx.ExecContext(ctx, `insert into route (start, end, url) values (?, ?, ?)`,
			int64(r.Start), int64(r.End), r.URL); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return db.Close()
}
