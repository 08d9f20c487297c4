package flist

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// ErrCorrupt means a file is not an flist or holds rows an flist cannot
// have (wrong column types, out-of-range numbers, ids that are not 32 bytes,
// unsafe names, a root that is not a directory).
var ErrCorrupt = errors.New("corrupt flist")

// Reader reads an flist. It opens the file read-only and immutable, so it
// also reads the WAL-mode flists of rfs v2.0.0-v2.0.2 without creating -wal
// or -shm files next to them. Its methods are safe for concurrent use.
type Reader struct {
	path string
	db   *sql.DB
}

// Open opens the flist at path and checks that it has rfs's tables.
func Open(path string) (*Reader, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open flist: %w", err)
	}
	dsn, err := fileDSN(path, "mode=ro&immutable=1")
	if err != nil {
		return nil, fmt.Errorf("open flist %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open flist %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	r := &Reader{path: path, db: db}
	if err := r.checkSchema(); err != nil {
		db.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) checkSchema() error {
	rows, err := r.db.Query(`select name from sqlite_master where type = 'table'`)
	if err != nil {
		return fmt.Errorf("open flist %s: %w: %w", r.path, ErrCorrupt, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("open flist %s: %w: %w", r.path, ErrCorrupt, err)
		}
		have[name] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("open flist %s: %w: %w", r.path, ErrCorrupt, err)
	}
	for _, t := range []string{"inode", "extra", "block", "route"} {
		if !have[t] {
			return fmt.Errorf("open flist %s: no %s table: %w", r.path, t, ErrCorrupt)
		}
	}
	return nil
}

// Path is the flist's file name.
func (r *Reader) Path() string { return r.path }

// Close closes the database.
func (r *Reader) Close() error { return r.db.Close() }

const selectInode = `select inode.ino, inode.parent, inode.name, inode.size, inode.uid, inode.gid,
	inode.mode, inode.rdev, inode.ctime, inode.mtime, extra.data
	from inode left join extra on inode.ino = extra.ino `

// Inode returns inode ino, or an error wrapping fs.ErrNotExist.
func (r *Reader) Inode(ctx context.Context, ino int64) (Inode, error) {
	ins, err := r.inodes(ctx, selectInode+`where inode.ino = ?`, ino)
	if err != nil {
		return Inode{}, err
	}
	if len(ins) == 0 {
		return Inode{}, fmt.Errorf("flist %s: inode %d: %w", r.path, ino, fs.ErrNotExist)
	}
	return ins[0], nil
}

// Children returns the entries of directory ino in inode order, which is
// the order rfs lists them in.
func (r *Reader) Children(ctx context.Context, ino int64) ([]Inode, error) {
	ins, err := r.inodes(ctx, selectInode+`where inode.parent = ? order by inode.ino`, ino)
	if err != nil {
		return nil, err
	}
	for _, in := range ins {
		if in.Ino == ino {
			return nil, fmt.Errorf("flist %s: inode %d is its own parent: %w", r.path, ino, ErrCorrupt)
		}
	}
	return ins, nil
}

// Lookup returns the entry name of directory parent, or an error wrapping
// fs.ErrNotExist.
func (r *Reader) Lookup(ctx context.Context, parent int64, name string) (Inode, error) {
	ins, err := r.inodes(ctx, selectInode+`where inode.parent = ? and inode.name = ? order by inode.ino limit 1`, parent, name)
	if err != nil {
		return Inode{}, err
	}
	if len(ins) == 0 || ins[0].Ino == parent {
		return Inode{}, fmt.Errorf("flist %s: %q in inode %d: %w", r.path, name, parent, fs.ErrNotExist)
	}
	return ins[0], nil
}

// LookupPath returns the inode at an absolute path inside the flist ("/" is
// the root), or an error wrapping fs.ErrNotExist.
func (r *Reader) LookupPath(ctx context.Context, p string) (Inode, error) {
	in, err := r.Inode(ctx, RootIno)
	for _, name := range strings.Split(strings.Trim(p, "/"), "/") {
		if err != nil || name == "" {
			break
		}
		in, err = r.Lookup(ctx, in.Ino, name)
	}
	return in, err
}

func (r *Reader) inodes(ctx context.Context, query string, args ...any) ([]Inode, error) {
	rows, err := r.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, r.queryErr("read inodes", err)
	}
	defer rows.Close()
	var out []Inode
	for rows.Next() {
		var c [11]any
		ptrs := make([]any, len(c))
		for i := range c {
			ptrs[i] = &c[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, r.queryErr("read inodes", err)
		}
		in, err := r.decodeInode(c)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, r.queryErr("read inodes", err)
	}
	return out, nil
}

func (r *Reader) queryErr(what string, err error) error {
	return fmt.Errorf("flist %s: %s: %w: %w", r.path, what, ErrCorrupt, err)
}

// decodeInode converts one row strictly: integers must be INTEGER (or NULL,
// read as 0), as rfs's reader demands, and in range for their field.
func (r *Reader) decodeInode(c [11]any) (Inode, error) {
	var in Inode
	// rdev, ctime and mtime hold signed casts of their Rust values, so any
	// integer goes; the other fields must be non-negative and fit.
	const anyInt = -1
	ints := []struct {
		col string
		v   any
		max int64
		set func(int64)
	}{
		{"ino", c[0], math.MaxInt64, func(v int64) { in.Ino = v }},
		{"parent", c[1], math.MaxInt64, func(v int64) { in.Parent = v }},
		{"size", c[3], math.MaxInt64, func(v int64) { in.Size = uint64(v) }},
		{"uid", c[4], math.MaxUint32, func(v int64) { in.UID = uint32(v) }},
		{"gid", c[5], math.MaxUint32, func(v int64) { in.GID = uint32(v) }},
		{"mode", c[6], math.MaxUint32, func(v int64) { in.Mode = uint32(v) }},
		{"rdev", c[7], anyInt, func(v int64) { in.Rdev = uint64(v) }},
		{"ctime", c[8], anyInt, func(v int64) { in.Ctime = v }},
		{"mtime", c[9], anyInt, func(v int64) { in.Mtime = v }},
	}
	for _, f := range ints {
		v, ok := f.v.(int64)
		if !ok && f.v != nil {
			return in, fmt.Errorf("flist %s: inode %v: column %s holds %T, not an integer: %w", r.path, c[0], f.col, f.v, ErrCorrupt)
		}
		if f.max != anyInt && (v < 0 || v > f.max) {
			return in, fmt.Errorf("flist %s: inode %v: column %s = %d out of range: %w", r.path, c[0], f.col, v, ErrCorrupt)
		}
		f.set(v)
	}
	var err error
	if in.Name, err = textOf(c[2]); err != nil {
		return in, fmt.Errorf("flist %s: inode %d: name: %w", r.path, in.Ino, err)
	}
	switch d := c[10].(type) {
	case nil:
	case []byte:
		in.Data = d
	case string:
		in.Data = []byte(d)
	default:
		return in, fmt.Errorf("flist %s: inode %d: extra data holds %T: %w", r.path, in.Ino, d, ErrCorrupt)
	}
	return in, nil
}

func textOf(v any) (string, error) {
	switch s := v.(type) {
	case nil:
		return "", nil
	case string:
		return s, nil
	case []byte:
		return string(s), nil
	default:
		return "", fmt.Errorf("holds %T, not text: %w", v, ErrCorrupt)
	}
}

// Blocks returns the blocks of a regular file in file order (insertion
// order: rfs has no sequence column).
func (r *Reader) Blocks(ctx context.Context, ino int64) ([]Block, error) {
	var out []Block
	err := r.scanBlocks(ctx, `select ino, id, key from block where ino = ? order by rowid`, []any{ino},
		func(_ int64, b Block) error {
			out = append(out, b)
			return nil
		})
	return out, err
}

// EachBlock calls fn for every block row of the flist, in insertion order.
func (r *Reader) EachBlock(ctx context.Context, fn func(ino int64, b Block) error) error {
	return r.scanBlocks(ctx, `select ino, id, key from block order by rowid`, nil, fn)
}

func (r *Reader) scanBlocks(ctx context.Context, query string, args []any, fn func(int64, Block) error) error {
	rows, err := r.db.QueryContext(ctx, query, args...)
	if err != nil {
		return r.queryErr("read blocks", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ino, id, key any
		if err := rows.Scan(&ino, &id, &key); err != nil {
			return r.queryErr("read blocks", err)
		}
		n, ok := ino.(int64)
		if !ok && ino != nil {
			return fmt.Errorf("flist %s: block row: ino holds %T: %w", r.path, ino, ErrCorrupt)
		}
		var b Block
		// Both lengths are checked (rfs checks the id twice and panics on a
		// short key).
		for _, f := range []struct {
			name string
			v    any
			dst  *[HashSize]byte
		}{{"id", id, &b.ID}, {"key", key, &b.Key}} {
			raw, ok := f.v.([]byte)
			if s, isText := f.v.(string); isText {
				raw, ok = []byte(s), true
			}
			if !ok || len(raw) != HashSize {
				return fmt.Errorf("flist %s: block of inode %d: %s is not %d bytes: %w", r.path, n, f.name, HashSize, ErrCorrupt)
			}
			copy(f.dst[:], raw)
		}
		if err := fn(n, b); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return r.queryErr("read blocks", err)
	}
	return nil
}

// Routes returns the route table in row order.
func (r *Reader) Routes(ctx context.Context) ([]store.Route, error) {
	rows, err := r.db.QueryContext(ctx, `select start, end, url from route order by rowid`)
	if err != nil {
		return nil, r.queryErr("read routes", err)
	}
	defer rows.Close()
	var out []store.Route
	for rows.Next() {
		var start, end, u any
		if err := rows.Scan(&start, &end, &u); err != nil {
			return nil, r.queryErr("read routes", err)
		}
		s, ok1 := start.(int64)
		e, ok2 := end.(int64)
		if !ok1 || !ok2 || s < 0 || s > 255 || e < 0 || e > 255 {
			return nil, fmt.Errorf("flist %s: route range %v-%v is not two bytes: %w", r.path, start, end, ErrCorrupt)
		}
		url, err := textOf(u)
		if err != nil {
			return nil, fmt.Errorf("flist %s: route url: %w", r.path, err)
		}
		out = append(out, store.Route{Start: uint8(s), End: uint8(e), URL: url})
	}
	if err := rows.Err(); err != nil {
		return nil, r.queryErr("read routes", err)
	}
	return out, nil
}

// Tags returns the tag table (empty for flists made by rfs pack).
func (r *Reader) Tags(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	rows, err := r.db.QueryContext(ctx, `select key, value from tag`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return out, nil
		}
		return nil, r.queryErr("read tags", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v any
		if err := rows.Scan(&k, &v); err != nil {
			return nil, r.queryErr("read tags", err)
		}
		ks, err1 := textOf(k)
		vs, err2 := textOf(v)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("flist %s: tag: %w", r.path, err)
		}
		out[ks] = vs
	}
	if err := rows.Err(); err != nil {
		return nil, r.queryErr("read tags", err)
	}
	return out, nil
}
