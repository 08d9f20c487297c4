package flist

import (
	"bytes"
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// schema is rfs's schema/schema.sql (threefoldtech/rfs, Apache-2.0), byte for
// byte, so sqlite_master of our flists reads the same as rfs's.
//
//go:embed schema.sql
var schema string

// Writer writes an flist. All rows go into one transaction, committed by
// Commit; an flist that was not committed is empty. Its methods are safe for
// concurrent use.
//
// Inode, extra and block rows are inserted batchRows at a time, in the order
// they were added (an error may therefore surface on a later call, or on
// Commit); routes and tags at once.
type Writer struct {
	path string
	db   *sql.DB
	tx   *sql.Tx

	mu                  sync.Mutex
	inode, extra, block rowBatch
	route, tag          *sql.Stmt
	nextIno             int64
	done                bool
}

// batchRows is how many rows one insert statement carries: with a
// statement per row, the transpiled SQLite spent several times longer
// setting up statements than inserting.
const batchRows = 128

// rowBatch buffers the rows of one table and inserts them batchRows at a
// time with one statement.
type rowBatch struct {
	table string // and its columns: "block (ino, id, key)"
	cols  int
	full  *sql.Stmt // inserts batchRows rows
	args  []any
}

func (b *rowBatch) query(rows int) string {
	row := "(?" + strings.Repeat(", ?", b.cols-1) + ")"
	return "insert into " + b.table + " values " + row + strings.Repeat(", "+row, rows-1)
}

func (b *rowBatch) prepare(ctx context.Context, tx *sql.Tx, table string, cols int) (err error) {
	b.table, b.cols = table, cols
	b.full, err = tx.PrepareContext(ctx, b.query(batchRows))
	return err
}

// add buffers one row and inserts the batch when it is full.
func (b *rowBatch) add(row ...any) error {
	b.args = append(b.args, row...)
	if len(b.args) < b.cols*batchRows {
		return nil
	}
	_, err := b.full.Exec(b.args...)
	b.args = b.args[:0]
	return err
}

// flush inserts the rows of a partial batch.
func (b *rowBatch) flush(tx *sql.Tx) error {
	if len(b.args) == 0 {
		return nil
	}
	_, err := tx.Exec(b.query(len(b.args)/b.cols), b.args...)
	b.args = b.args[:0]
	return err
}

// fileDSN is a SQLite URI for path with the given query, so that paths
// containing '?' or '#' stay file names.
func fileDSN(path, query string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: abs, RawQuery: query}).String(), nil
}

// Create starts a new flist at path, replacing any file there (as rfs does),
// with rfs's schema, journal mode DELETE and 4096-byte pages.
func Create(path string) (*Writer, error) {
	for _, p := range []string{path, path + "-journal", path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("create flist %s: %w", path, err)
		}
	}
	// synchronous=OFF: the flist is written under a temporary name and
	// synced once before it is renamed into place (see Pack).
	dsn, err := fileDSN(path, "_pragma=journal_mode(DELETE)&_pragma=synchronous(OFF)&_pragma=page_size(4096)")
	if err != nil {
		return nil, fmt.Errorf("create flist %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("create flist %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	w := &Writer{path: path, db: db}
	if err := w.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("create flist %s: %w", path, err)
	}
	return w, nil
}

func (w *Writer) init() error {
	ctx := context.Background()
	if _, err := w.db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	w.tx = tx
	w.nextIno = RootIno
	for _, b := range []struct {
		batch *rowBatch
		table string
		cols  int
	}{
		{&w.inode, "inode (ino, parent, name, size, uid, gid, mode, rdev, ctime, mtime)", 10},
		{&w.extra, "extra (ino, data)", 2},
		{&w.block, "block (ino, id, key)", 3},
	} {
		if err := b.batch.prepare(ctx, tx, b.table, b.cols); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&w.route, `insert into route (start, end, url) values (?, ?, ?)`},
		{&w.tag, `insert or replace into tag (key, value) values (?, ?)`},
	} {
		if *p.stmt, err = tx.PrepareContext(ctx, p.sql); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return nil
}

// AddInode adds an inode (and its extra row when in.Data is not nil) and
// returns its number: inodes are numbered from 1 in the order they are
// added. The first inode added must be the root, with Parent 0 and Name "/".
func (w *Writer) AddInode(in Inode) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, errWriterClosed
	}
	ino := w.nextIno
	if err := w.inode.add(ino, in.Parent, in.Name, int64(in.Size), int64(in.UID), int64(in.GID),
		int64(in.Mode), int64(in.Rdev), in.Ctime, in.Mtime); err != nil {
		return 0, fmt.Errorf("flist %s: add inodes up to %q: %w", w.path, in.Name, err)
	}
	if in.Data != nil {
		// A []byte binds as a BLOB, which is what rfs writes and reads.
		if err := w.extra.add(ino, bytes.Clone(in.Data)); err != nil {
			return 0, fmt.Errorf("flist %s: add extra rows up to %q: %w", w.path, in.Name, err)
		}
	}
	w.nextIno++
	return ino, nil
}

// AddBlocks appends the blocks of a file, in file order.
func (w *Writer) AddBlocks(ino int64, blocks []Block) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errWriterClosed
	}
	for _, b := range blocks {
		if err := w.block.add(ino, b.ID[:], b.Key[:]); err != nil {
			return fmt.Errorf("flist %s: add blocks up to inode %d: %w", w.path, ino, err)
		}
	}
	return nil
}

// AddRoute appends a route row.
func (w *Writer) AddRoute(r store.Route) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errWriterClosed
	}
	if _, err := w.route.Exec(int64(r.Start), int64(r.End), r.URL); err != nil {
		return fmt.Errorf("flist %s: add route: %w", w.path, err)
	}
	return nil
}

// SetTag sets a tag (rfs's pack writes none; `rfs config tag add` does).
func (w *Writer) SetTag(key, value string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errWriterClosed
	}
	if _, err := w.tag.Exec(key, value); err != nil {
		return fmt.Errorf("flist %s: set tag %q: %w", w.path, key, err)
	}
	return nil
}

var errWriterClosed = errors.New("flist writer already closed")

// Commit commits all rows and closes the database.
func (w *Writer) Commit() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errWriterClosed
	}
	w.done = true
	var err error
	for _, b := range []*rowBatch{&w.inode, &w.extra, &w.block} {
		if err = b.flush(w.tx); err != nil {
			table, _, _ := strings.Cut(b.table, " ")
			err = errors.Join(fmt.Errorf("add %s rows: %w", table, err), w.tx.Rollback())
			break
		}
	}
	if err == nil {
		err = w.tx.Commit()
	}
	return w.closeDB(err)
}

// Close discards uncommitted rows and closes the database. It is a no-op
// after Commit.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil
	}
	w.done = true
	err := w.tx.Rollback()
	return w.closeDB(err)
}

func (w *Writer) closeDB(err error) error {
	for _, s := range []*sql.Stmt{w.inode.full, w.extra.full, w.block.full, w.route, w.tag} {
		err = errors.Join(err, s.Close())
	}
	err = errors.Join(err, w.db.Close())
	if err != nil {
		return fmt.Errorf("flist %s: %w", w.path, err)
	}
	return nil
}
