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
	"sync/atomic"

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
// The rows are inserted by one goroutine of the Writer, in the order they
// were added (which fixes the file's bytes), while the caller carries on;
// inode, extra and block rows batchRows at a time. An insert's error
// therefore surfaces on a later call, or on Commit.
type Writer struct {
	path string
	db   *sql.DB
	tx   *sql.Tx

	mu                  sync.Mutex
	inode, extra, block rowBatch
	route, tag          *sql.Stmt
	nextIno             int64
	done                bool

	inserts chan func() error // run in order by the inserter
	stopped chan struct{}     // closed when the inserter has run them all
	failed  atomic.Pointer[error]
}

// batchRows is how many rows one insert statement carries: with a
// statement per row, the transpiled SQLite spent several times longer
// setting up statements than inserting.
const batchRows = 128

// rowBatch buffers the rows of one table for a statement that inserts
// batchRows of them.
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

// add buffers one row and returns the insert of the batch once it is full.
func (b *rowBatch) add(row ...any) func() error {
	b.args = append(b.args, row...)
	if len(b.args) < b.cols*batchRows {
		return nil
	}
	args := b.args
	b.args = make([]any, 0, len(args))
	return func() error {
		_, err := b.full.Exec(args...)
		return err
	}
}

// rest returns the insert of a partial batch, or nil.
func (b *rowBatch) rest(tx *sql.Tx) func() error {
	if len(b.args) == 0 {
		return nil
	}
	args := b.args
	b.args = nil
	return func() error {
		_, err := tx.Exec(b.query(len(args)/b.cols), args...)
		return err
	}
}

// insert queues an insert (nil: none) for the inserter; what names the
// rows in an error, formatted only then. It fails with the error of an
// earlier insert, if one failed. The caller holds w.mu.
func (w *Writer) insert(do func() error, what string, args ...any) error {
	if p := w.failed.Load(); p != nil {
		return *p
	}
	if do == nil {
		return nil
	}
	w.inserts <- func() error {
		if err := do(); err != nil {
			return fmt.Errorf("flist %s: %s: %w", w.path, fmt.Sprintf(what, args...), err)
		}
		return nil
	}
	return nil
}

// inserter runs the queued inserts until the queue is closed; after the
// first failure it only drains it.
func (w *Writer) inserter() {
	defer close(w.stopped)
	for do := range w.inserts {
		if w.failed.Load() == nil {
			if err := do(); err != nil {
				w.failed.Store(&err)
			}
		}
	}
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
	go w.inserter()
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
	w.inserts, w.stopped = make(chan func() error, 4), make(chan struct{})
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
	err := w.insert(w.inode.add(ino, in.Parent, in.Name, int64(in.Size), int64(in.UID), int64(in.GID),
		int64(in.Mode), int64(in.Rdev), in.Ctime, in.Mtime), "add inodes up to %q", in.Name)
	if err == nil && in.Data != nil {
		// A []byte binds as a BLOB, which is what rfs writes and reads.
		err = w.insert(w.extra.add(ino, bytes.Clone(in.Data)), "add extra rows up to %q", in.Name)
	}
	if err != nil {
		return 0, err
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
		id, key := b.ID, b.Key
		if err := w.insert(w.block.add(ino, id[:], key[:]), "add blocks up to inode %d", ino); err != nil {
			return err
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
	return w.insert(func() error {
		_, err := w.route.Exec(int64(r.Start), int64(r.End), r.URL)
		return err
	}, "add route")
}

// SetTag sets a tag (rfs's pack writes none; `rfs config tag add` does).
func (w *Writer) SetTag(key, value string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errWriterClosed
	}
	return w.insert(func() error {
		_, err := w.tag.Exec(key, value)
		return err
	}, "set tag %q", key)
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
		table, _, _ := strings.Cut(b.table, " ")
		if err = w.insert(b.rest(w.tx), "add %s rows", table); err != nil {
			break
		}
	}
	if stopErr := w.stop(); err == nil {
		err = stopErr // the first failed insert, if any
	}
	if err == nil {
		err = w.tx.Commit()
	} else {
		err = errors.Join(err, w.tx.Rollback())
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
	_ = w.stop() // the rows are discarded anyway
	return w.closeDB(w.tx.Rollback())
}

// stop waits for the queued inserts and returns the first one's error.
func (w *Writer) stop() error {
	close(w.inserts)
	<-w.stopped
	if p := w.failed.Load(); p != nil {
		return *p
	}
	return nil
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
