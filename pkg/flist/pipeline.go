package flist

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// The pack pipeline. The walk, in its own goroutine, inserts the inode rows
// in rfs's order and queues the regular files as it finds them; meanwhile
// the previous flist is loaded. Then opt.Parallel workers take the work
// from a dispatcher, in walk order: the previous blocks of an unchanged
// file, or one chunk of a changed one, which the worker reads itself (pread
// at the chunk's offset, on a descriptor the file's chunks share), encodes
// and stores (on a disk, through its writer: see worker). A chunk does not
// change goroutine on its way to the encoder, so a single large file still
// uses every core and no thread sleeps or wakes to hand it on; whichever
// goroutine finishes a file's last chunk completes it. The block rows
// are written after the walk's inode rows and in walk order, so the flist
// does not depend on which worker was fastest: the same tree gives the same
// bytes.
//
// Memory does not grow with the size of the tree's files: each worker holds
// one chunk buffer at a time (see maxChunks) and one or two Encoders.

// fileState tracks one regular file through the pipeline.
type fileState struct {
	job     fileJob
	blocks  []Block // one per chunk, filled by the workers; the previous blocks of a reused file
	pending atomic.Int64
	failed  atomic.Bool
}

// work is a chunk to read, encode and store, or (reuse) the previous
// blocks of an unchanged file, whose presence in the store must be checked.
type work struct {
	f     *fileState
	of    *openFile // the chunk's file
	i     int       // chunk index
	reuse []Block
}

// openFile is a changed file being cut into chunks. Its descriptor is
// shared by the workers reading its chunks; the last one closes it.
type openFile struct {
	fd           int
	next, chunks int          // the next chunk to hand out, and how many there are
	refs         atomic.Int32 // the dispatcher's, and one per chunk handed out
}

func (of *openFile) release() {
	if of.refs.Add(-1) == 0 {
		unix.Close(of.fd)
	}
}

// maxChunks bounds the chunk buffers a pack holds at once: one per worker.
func maxChunks(parallel int) int { return parallel }

// chunkPool holds the pack's chunk buffers. Unlike a sync.Pool it keeps
// them across garbage collections (a pack would otherwise allocate and zero
// a new 512 KiB buffer per chunk), and it counts the most buffers out at
// once, which the pipeline's structure bounds by maxChunks.
type chunkPool struct {
	free      chan *[]byte
	out, peak atomic.Int64
}

func newChunkPool(parallel int) *chunkPool {
	return &chunkPool{free: make(chan *[]byte, maxChunks(parallel))}
}

func (c *chunkPool) get() *[]byte {
	out := c.out.Add(1)
	for peak := c.peak.Load(); out > peak && !c.peak.CompareAndSwap(peak, out); peak = c.peak.Load() {
	}
	select {
	case b := <-c.free:
		return b
	default:
		b := make([]byte, BlockSize)
		return &b
	}
}

func (c *chunkPool) put(b *[]byte) {
	c.out.Add(-1)
	select {
	case c.free <- b:
	default:
	}
}

// fileQueue hands the files the walk finds to the dispatcher in walk order. It
// keeps them: their block rows are written in that order at the end.
type fileQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	files  []*fileState
	closed bool
}

func newFileQueue() *fileQueue {
	q := &fileQueue{}
	q.cond.L = &q.mu
	return q
}

func (q *fileQueue) push(job fileJob) {
	q.mu.Lock()
	q.files = append(q.files, &fileState{job: job})
	q.mu.Unlock()
	q.cond.Signal()
}

// close marks the end of the walk.
func (q *fileQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// get waits for the i-th file; false once the walk ended without one.
func (q *fileQueue) get(i int) (*fileState, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i >= len(q.files) && !q.closed {
		q.cond.Wait()
	}
	if i >= len(q.files) {
		return nil, false
	}
	return q.files[i], true
}

// pack walks the tree at srcDir into w and stores the blocks of its regular
// files. The first file that fails (after retries) cancels the rest: the
// pack fails anyway, and against a store that went away, carrying on only
// multiplies the waiting.
func (p *packer) pack(parent context.Context, w *Writer, srcDir, outFL string, root *unix.Stat_t, out outFiles) error {
	if p.opt.Progress != nil {
		p.bar = progress.Start("pack", 0, progress.Bytes, *p.opt.Progress)
		defer p.bar.Finish()
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	p.cancel = cancel
	q := newFileQueue()
	walked := make(chan error, 1)
	go func() {
		start := time.Now()
		err := p.walk(ctx, w, srcDir, root, out, q.push)
		p.walkTime = time.Since(start)
		q.close()
		if err != nil {
			cancel()
		} else {
			p.bar.SetTotal(int64(p.stats.Bytes))
		}
		walked <- err
	}()
	switch {
	case p.opt.NoReuse:
	case p.opt.ReuseIndex != "":
		p.loadReuseIndex(p.opt.ReuseIndex)
	case p.opt.Time == nil:
		p.loadPrevious(ctx, outFL)
	}
	err := p.askStore(ctx)
	if err == nil {
		d := &dispatcher{p: p, q: q}
		var workers sync.WaitGroup
		for range p.opt.Parallel {
			workers.Add(1)
			go func() {
				defer workers.Done()
				wk := p.startWorker(ctx)
				defer wk.stop()
				for w, ok := d.next(ctx); ok; w, ok = d.next(ctx) {
					p.do(ctx, wk, w)
				}
			}()
		}
		workers.Wait()
		d.stop()
	} else {
		cancel()
	}
	walkErr := <-walked
	switch {
	case parent.Err() != nil:
		return parent.Err()
	case err != nil:
		return err
	case len(p.failed) > 0:
		sort.Strings(p.failed)
		return &UploadError{Files: p.failed, Err: p.firstErr}
	case walkErr != nil:
		return walkErr
	}
	p.files = q.files
	for _, f := range q.files {
		if err := w.AddBlocks(f.job.ino, f.blocks); err != nil {
			return err
		}
		p.blocks.Add(int64(len(f.blocks)))
	}
	return nil
}

// dispatcher hands out the pack's work in walk order (see the top of the
// file).
type dispatcher struct {
	p   *packer
	q   *fileQueue
	mu  sync.Mutex
	i   int       // the next file of q
	cur *openFile // the file being cut into chunks, nil between files
	f   *fileState
}

// next returns the next piece of work: false once the walk's files are all
// handed out or the pack is cancelled. It waits for the walk when the
// workers have caught up with it.
func (d *dispatcher) next(ctx context.Context) (work, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ctx.Err() == nil {
		if of := d.cur; of != nil {
			w := work{f: d.f, of: of, i: of.next}
			of.next++
			of.refs.Add(1)
			d.f.pending.Add(1)
			if of.next == of.chunks {
				d.drop()
			}
			return w, true
		}
		f, ok := d.q.get(d.i)
		if !ok {
			return work{}, false
		}
		d.i++
		f.pending.Store(1) // the dispatcher's reference, dropped once every chunk is handed out
		if blocks, ok := d.p.reusable(f.job); ok {
			return work{f: f, reuse: blocks}, true
		}
		of, err := openChunks(f)
		if err != nil {
			d.p.fail(ctx, f, err)
			d.p.release(f)
			continue
		}
		f.blocks = make([]Block, of.chunks)
		d.cur, d.f = of, f
		if of.chunks == 0 {
			// An empty file is done once it is known to be still empty.
			if err := d.p.checkEnd(f, of.fd); err != nil {
				d.p.fail(ctx, f, err)
			}
			d.drop()
		}
	}
	return work{}, false
}

// drop ends the current file's dispatch: the dispatcher's references go.
func (d *dispatcher) drop() {
	d.cur.release()
	d.p.release(d.f)
	d.cur, d.f = nil, nil
}

// stop drops a file left half handed out by a cancelled pack.
func (d *dispatcher) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur != nil {
		d.drop()
	}
}

// readChunk reads chunk i of a changed file into a pooled buffer. A chunk
// shorter than the size the walk recorded, or a file that goes on past it,
// fails: its inode row would not match its blocks.
func (p *packer) readChunk(w work) (*[]byte, int, error) {
	off := int64(w.i) * BlockSize
	want := int(min(BlockSize, int64(w.f.job.in.Size)-off))
	buf := p.chunks.get()
	n, err := preadFull(w.of.fd, (*buf)[:want], off)
	if err != nil {
		err = &os.PathError{Op: "read", Path: w.f.job.path, Err: err}
	}
	if err == nil && n < want {
		err = fmt.Errorf("%s changed during the pack: chunk %d has %d bytes, %d when walked", w.f.job.path, w.i, n, want)
	}
	if err == nil && w.i == w.of.chunks-1 {
		err = p.checkEnd(w.f, w.of.fd)
	}
	if err != nil {
		p.chunks.put(buf)
		return nil, 0, err
	}
	return buf, n, nil
}

// checkEnd fails a file that has bytes past the size the walk recorded.
func (p *packer) checkEnd(f *fileState, fd int) error {
	var one [1]byte
	n, err := preadFull(fd, one[:], int64(f.job.in.Size))
	if err != nil {
		return &os.PathError{Op: "read", Path: f.job.path, Err: err}
	}
	if n > 0 {
		return fmt.Errorf("%s changed during the pack: longer than the %d bytes walked", f.job.path, f.job.in.Size)
	}
	return nil
}

// preadFull reads len(buf) bytes at off, or up to the end of the file.
func preadFull(fd int, buf []byte, off int64) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], off+int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// openChunks opens a changed file for reading its chunks, with one
// reference, the opener's. The file is read without os.File, whose poller
// registration costs five system calls per file.
func openChunks(f *fileState) (*openFile, error) {
	fd, err := unix.Open(f.job.path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: f.job.path, Err: err}
	}
	of := &openFile{fd: fd, chunks: int(blocksFor(f.job.in.Size))}
	of.refs.Store(1)
	return of, nil
}

// eachChunk reads a file's chunks in order on this goroutine, with
// readChunk's checks, and hands each pooled buffer to use, which then owns
// it.
func (p *packer) eachChunk(f *fileState, use func(i int, buf *[]byte, n int) error) error {
	of, err := openChunks(f)
	if err != nil {
		return err
	}
	defer of.release()
	if of.chunks == 0 {
		return p.checkEnd(f, of.fd)
	}
	for i := range of.chunks {
		buf, n, err := p.readChunk(work{f: f, of: of, i: i})
		if err != nil {
			return err
		}
		if err := use(i, buf, n); err != nil {
			return err
		}
	}
	return nil
}

// worker is one of the pack's workers. With writeBehind, it encodes into
// one of two Encoders while its writer goroutine stores the blob of the
// other: a write that waits for a disk (O_DIRECT) then overlaps the next
// chunk's encoding instead of leaving the CPU idle. Without, it stores
// each blob itself: handing a blob that is in this CPU's caches to
// another thread costs more than a write that only copies it (tmpfs), and
// a remote store already has Parallel workers waiting on it.
type worker struct {
	// encs holds the Encoders not holding a blob being stored; its
	// capacity is how many there are: 2 with a writer, else 1.
	encs chan *Encoder
	puts chan putReq   // nil without writeBehind
	done chan struct{} // closed when the writer has stored every blob sent
}

// putReq is a blob for a worker's writer to store: enc's blob, of the
// chunk of f that makes n bytes.
type putReq struct {
	f    *fileState
	enc  *Encoder
	id   [HashSize]byte
	blob []byte
	n    int
}

// startWorker returns a worker, and with writeBehind starts its writer;
// stop ends it.
func (p *packer) startWorker(ctx context.Context) *worker {
	n := 1
	if p.writeBehind {
		n = 2
	}
	wk := &worker{encs: make(chan *Encoder, n)}
	for range n {
		wk.encs <- new(Encoder)
	}
	if !p.writeBehind {
		return wk
	}
	wk.puts, wk.done = make(chan putReq, 1), make(chan struct{})
	go func() {
		defer close(wk.done)
		for r := range wk.puts {
			err := p.put(ctx, r.id, r.blob)
			wk.encs <- r.enc
			p.chunkDone(ctx, r.f, r.n, err)
		}
	}()
	return wk
}

// stop waits for the writer, if any, to store what it was sent.
func (wk *worker) stop() {
	if wk.puts != nil {
		close(wk.puts)
		<-wk.done
	}
}

// do runs one piece of work on a worker.
func (p *packer) do(ctx context.Context, wk *worker, w work) {
	if w.reuse != nil {
		// Every Encoder: the writer is idle, so the store sees at most
		// one request per worker.
		encs := make([]*Encoder, cap(wk.encs))
		for i := range encs {
			encs[i] = <-wk.encs
		}
		p.checkReuse(ctx, encs[0], w.f, w.reuse)
		for _, enc := range encs {
			wk.encs <- enc
		}
		p.release(w.f)
		return
	}
	if w.f.failed.Load() || ctx.Err() != nil {
		w.of.release()
		p.release(w.f)
		return
	}
	buf, n, err := p.readChunk(w)
	w.of.release()
	if err != nil {
		p.chunkDone(ctx, w.f, n, err)
		return
	}
	enc := <-wk.encs
	var blob []byte
	w.f.blocks[w.i], blob, err = p.encode(enc, buf, n)
	switch {
	case err == nil && blob != nil && wk.puts != nil:
		wk.puts <- putReq{f: w.f, enc: enc, id: w.f.blocks[w.i].ID, blob: blob, n: n}
		return
	case err == nil && blob != nil:
		err = p.put(ctx, w.f.blocks[w.i].ID, blob)
	}
	wk.encs <- enc
	p.chunkDone(ctx, w.f, n, err)
}

// chunkDone ends the work on a chunk of f of n bytes, which err failed
// or not.
func (p *packer) chunkDone(ctx context.Context, f *fileState, n int, err error) {
	if err != nil {
		p.fail(ctx, f, err)
	} else {
		p.bar.Add(int64(n))
	}
	p.release(f)
}

// encode turns the first n bytes of a chunk buffer into a block and gives
// the buffer back. It returns the blob to store, valid until enc's next
// use, or nil for a chunk whose content this pack has encoded already:
// that chunk is not encoded again, as the blob is a function of the
// content (convergent encryption), so its key, the content's hash, tells
// its id.
func (p *packer) encode(enc *Encoder, buf *[]byte, n int) (Block, []byte, error) {
	defer p.chunks.put(buf)
	plain := (*buf)[:n]
	key := blake2b.Sum256(plain)
	if id, dup := p.ids.Load(key); dup {
		return Block{ID: id.([HashSize]byte), Key: key}, nil, nil
	}
	b, blob, err := enc.encodeKeyed(plain, key)
	if err != nil {
		return b, nil, err
	}
	p.ids.Store(key, b.ID)
	return b, blob, nil
}

// release drops a reference to f; the last one completes it.
func (p *packer) release(f *fileState) {
	if f.pending.Add(-1) != 0 || f.failed.Load() {
		return
	}
	p.bar.Detail(fmt.Sprintf("%d files, %d blobs uploaded, %d skipped",
		p.filesDone.Add(1), p.uploaded.Load(), p.skipped.Load()))
}

// fail records that f failed and cancels the pack, unless err only reports
// that cancel.
func (p *packer) fail(ctx context.Context, f *fileState, err error) {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		f.failed.Store(true)
		return
	}
	if f.failed.Swap(true) {
		return
	}
	p.mu.Lock()
	p.failed = append(p.failed, f.job.path)
	if p.firstErr == nil {
		p.firstErr = err
	}
	p.mu.Unlock()
	p.cancel()
}

// prevFile is a regular file of the previous pack.
type prevFile struct {
	stamp  fileStamp
	blocks []Block
}

// loadPrevious reads the flist at path, if there is one, as the record of
// the last pack. Anything unreadable just means no reuse. It runs while the
// walk does, and reads only what reuse needs, with one query for the inodes
// and one for the blocks (Reader.Walk asks once per directory and decodes
// every column: that made it the longest step of packing an unchanged tree);
// the paths are rebuilt from the parent column, and an inode whose parent
// does not come before it, or whose name is unsafe, is not reused.
func (p *packer) loadPrevious(ctx context.Context, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	r, err := Open(path)
	if err != nil {
		p.log.WithError(err).Debug("previous flist unreadable; packing every file")
		return
	}
	defer r.Close()
	prev, err := previousFiles(ctx, r)
	if err != nil {
		p.log.WithError(err).Debug("previous flist unreadable; packing every file")
		return
	}
	p.prev, p.prevWalk = prev, fi.ModTime().Unix()
}

// previousFiles returns the regular files of an flist by path.
func previousFiles(ctx context.Context, r *Reader) (map[string]prevFile, error) {
	blocks := map[int64][]Block{}
	rows, err := r.db.QueryContext(ctx, `select ino, id, key from block order by rowid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var ino int64
		var id, key sql.RawBytes
		if err := rows.Scan(&ino, &id, &key); err != nil {
			return nil, err
		}
		var b Block
		if len(id) != HashSize || len(key) != HashSize {
			return nil, fmt.Errorf("block of inode %d: id or key is not %d bytes: %w", ino, HashSize, ErrCorrupt)
		}
		copy(b.ID[:], id)
		copy(b.Key[:], key)
		blocks[ino] = append(blocks[ino], b)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = r.db.QueryContext(ctx, `select ino, parent, name, size, mode, ctime, mtime from inode order by ino`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	dirs := map[int64]string{}
	prev := map[string]prevFile{}
	for rows.Next() {
		var in Inode
		var size, mode int64
		if err := rows.Scan(&in.Ino, &in.Parent, &in.Name, &size, &mode, &in.Ctime, &in.Mtime); err != nil {
			return nil, err
		}
		in.Size, in.Mode = uint64(size), uint32(mode)
		if size < 0 || mode < 0 || mode > math.MaxUint32 {
			continue
		}
		if in.Ino == RootIno {
			if in.Type() == TypeDir {
				dirs[in.Ino] = "/"
			}
			continue
		}
		dir, ok := dirs[in.Parent]
		if !ok || in.Parent >= in.Ino || !ValidName(in.Name) {
			continue
		}
		switch fpath := joinPath(dir, in.Name); in.Type() {
		case TypeDir:
			dirs[in.Ino] = fpath
		case TypeRegular:
			prev[fpath] = prevFile{stamp: recordStamp(&in), blocks: blocks[in.Ino]}
		}
	}
	return prev, rows.Err()
}

// reusable returns the previous blocks of a file that has not changed: same
// path and stamp (size, mode, mtime and ctime; with a ReuseIndex also the
// inode, and times to the nanosecond), and a ctime and mtime from before
// the second the previous walk started (a change within the second of the
// stat would not show in whole-second times).
func (p *packer) reusable(job fileJob) ([]Block, bool) {
	pf, ok := p.prev[job.fpath]
	cur := recordStamp(&job.in)
	if p.opt.ReuseIndex != "" {
		cur = job.stamp
	}
	if !ok || pf.stamp != cur {
		return nil, false
	}
	if pf.stamp.Ctime >= p.prevWalk || pf.stamp.Mtime >= p.prevWalk || uint64(len(pf.blocks)) != blocksFor(cur.Size) {
		return nil, false
	}
	return append([]Block{}, pf.blocks...), true // non-nil even for an empty file
}

// askStore settles at once, for stores that can (S3 lists its keys), which
// blobs of the previous flist the store has; checkReuse then asks only about
// the rest, one by one. It runs while the walk finds the unchanged files.
func (p *packer) askStore(ctx context.Context) error {
	b, ok := p.opt.Store.(store.BatchExister)
	if !ok {
		return nil
	}
	seen := map[[HashSize]byte]bool{}
	var ids [][]byte
	for _, pf := range p.prev {
		for _, blk := range pf.blocks {
			if !seen[blk.ID] {
				seen[blk.ID] = true
				ids = append(ids, blk.ID[:])
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	known, err := b.ExistsAll(ctx, ids)
	if err != nil {
		if store.Permanent(err) {
			return err
		}
		p.log.WithError(err).Debug("listing the store failed; asking blob by blob")
		return nil
	}
	p.known = known
	return nil
}

// checkReuse keeps the previous blocks of an unchanged file if the store
// has them all, and otherwise encodes the file again.
func (p *packer) checkReuse(ctx context.Context, enc *Encoder, f *fileState, blocks []Block) {
	for _, b := range blocks {
		if _, done := p.seen.Load(b.ID); done {
			continue
		}
		exists, known := p.known[store.Hex(b.ID[:])]
		var err error
		if !known {
			exists, err = p.store.Exists(ctx, b.ID[:])
		}
		if err != nil {
			p.fail(ctx, f, err)
			return
		}
		if !exists {
			p.reencode(ctx, enc, f)
			return
		}
		if _, dup := p.seen.LoadOrStore(b.ID, struct{}{}); !dup {
			p.skipped.Add(1)
		}
	}
	f.blocks = blocks
	p.reused.Add(1)
	p.bar.Add(int64(f.job.in.Size))
}

// reencode packs a whole file on this worker (an unchanged file whose
// blobs the store no longer has).
func (p *packer) reencode(ctx context.Context, enc *Encoder, f *fileState) {
	blocks := make([]Block, 0, blocksFor(f.job.in.Size))
	err := p.eachChunk(f, func(_ int, buf *[]byte, n int) error {
		b, blob, err := p.encode(enc, buf, n)
		if err == nil && blob != nil {
			err = p.put(ctx, b.ID, blob)
		}
		if err != nil {
			return err
		}
		blocks = append(blocks, b)
		p.bar.Add(int64(n))
		return nil
	})
	if err != nil {
		p.fail(ctx, f, err)
		return
	}
	f.blocks = blocks
}

// put stores a blob unless this pack already handled its id or the store
// already has it.
func (p *packer) put(ctx context.Context, id [HashSize]byte, blob []byte) error {
	if _, dup := p.seen.LoadOrStore(id, struct{}{}); dup {
		return nil
	}
	exists, err := p.store.Exists(ctx, id[:])
	if err != nil {
		return err
	}
	if exists {
		p.skipped.Add(1)
		return nil
	}
	if err := p.store.Set(ctx, id[:], blob); err != nil {
		return err
	}
	p.uploaded.Add(1)
	p.uploadedBytes.Add(int64(len(blob)))
	return nil
}
