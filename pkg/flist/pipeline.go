package flist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// The upload pipeline: one reader goroutine (the caller's) reads the files
// in walk order and cuts them into chunks; opt.Parallel workers encode and
// store chunks from any file, so a single large file still uses every core;
// whichever goroutine finishes a file's last chunk records its blocks. The
// block rows are written at the end in walk order, so the flist does not
// depend on which worker was fastest: the same tree gives the same bytes.

// fileState tracks one regular file through the pipeline.
type fileState struct {
	job     fileJob
	index   int      // in the job list
	slots   []*Block // one per chunk, appended by the reader, filled by workers
	blocks  []Block  // set instead of slots when the file was reused or re-encoded whole
	pending atomic.Int64
	failed  atomic.Bool
}

// task is a chunk to encode and store, or (reuse) the previous blocks of an
// unchanged file, whose presence in the store must be checked.
type task struct {
	f     *fileState
	slot  *Block
	buf   *[]byte
	n     int
	reuse bool
	prev  []Block
}

// upload packs the files. The first file that fails (after retries) cancels
// the rest: the pack fails anyway, and against a store that went away,
// carrying on only multiplies the waiting.
func (p *packer) upload(parent context.Context, w *Writer, jobs []fileJob) error {
	if p.opt.Progress != nil {
		p.bar = progress.Start("pack", int64(p.stats.Bytes), progress.Bytes, *p.opt.Progress)
		defer p.bar.Finish()
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	p.cancel, p.files = cancel, len(jobs)
	p.results = make([][]Block, len(jobs))
	reuse := make([][]Block, len(jobs))
	for i, job := range jobs {
		reuse[i], _ = p.reusable(job)
	}
	if err := p.askStore(ctx, reuse); err != nil {
		return err
	}
	tasks := make(chan task, p.opt.Parallel)
	done := make(chan struct{})
	for range p.opt.Parallel {
		go func() {
			defer func() { done <- struct{}{} }()
			var enc Encoder
			for t := range tasks {
				p.do(ctx, &enc, t)
			}
		}()
	}
	p.read(ctx, jobs, reuse, tasks)
	close(tasks)
	for range p.opt.Parallel {
		<-done
	}
	if err := parent.Err(); err != nil {
		return err
	}
	if len(p.failed) > 0 {
		sort.Strings(p.failed)
		return &UploadError{Files: p.failed, Err: p.firstErr}
	}
	for i, job := range jobs {
		if err := w.AddBlocks(job.ino, p.results[i]); err != nil {
			return err
		}
		p.blocks.Add(int64(len(p.results[i])))
	}
	return nil
}

func send(ctx context.Context, tasks chan<- task, t task) bool {
	select {
	case tasks <- t:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *packer) read(ctx context.Context, jobs []fileJob, reuse [][]Block, tasks chan<- task) {
	for i, job := range jobs {
		if ctx.Err() != nil {
			return
		}
		f := &fileState{job: job, index: i}
		f.pending.Store(1) // the reader's reference, dropped when it is done with the file
		if blocks := reuse[i]; blocks != nil {
			if !send(ctx, tasks, task{f: f, reuse: true, prev: blocks}) {
				return
			}
			continue
		}
		p.readFile(ctx, f, tasks)
		p.release(f)
	}
}

func (p *packer) readFile(ctx context.Context, f *fileState, tasks chan<- task) {
	err := p.eachChunk(f, func(buf *[]byte, n int) error {
		slot := new(Block)
		f.slots = append(f.slots, slot)
		f.pending.Add(1)
		if !send(ctx, tasks, task{f: f, slot: slot, buf: buf, n: n}) {
			f.pending.Add(-1)
			p.bufs.Put(buf)
			return ctx.Err()
		}
		return nil
	})
	if err != nil {
		p.fail(ctx, f, err)
	}
}

// eachChunk reads a file in BlockSize chunks into pooled buffers and hands
// each to use, which then owns the buffer. A file whose length is not the
// size the walk recorded fails: its inode row would not match its blocks.
func (p *packer) eachChunk(f *fileState, use func(buf *[]byte, n int) error) error {
	fh, err := os.OpenFile(f.job.path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	var total uint64
	for {
		buf := p.bufs.Get().(*[]byte)
		n, err := io.ReadFull(fh, *buf)
		total += uint64(n)
		if n > 0 {
			if err := use(buf, n); err != nil {
				return err
			}
		} else {
			p.bufs.Put(buf)
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", f.job.path, err)
		}
	}
	if total != f.job.in.Size {
		return fmt.Errorf("%s changed during the pack: %d bytes read, %d when walked", f.job.path, total, f.job.in.Size)
	}
	return nil
}

// do runs one task on a worker.
func (p *packer) do(ctx context.Context, enc *Encoder, t task) {
	defer p.release(t.f)
	if t.reuse {
		p.checkReuse(ctx, enc, t.f, t.prev)
		return
	}
	if t.f.failed.Load() || ctx.Err() != nil {
		p.bufs.Put(t.buf)
		return
	}
	b, blob, err := enc.Encode((*t.buf)[:t.n])
	p.bufs.Put(t.buf) // Encode is done with the plain chunk
	if err == nil {
		err = p.put(ctx, b.ID, blob)
	}
	if err != nil {
		p.fail(ctx, t.f, err)
		return
	}
	*t.slot = b
	p.bar.Add(int64(t.n))
}

// release drops a reference to f; the last one records its blocks.
func (p *packer) release(f *fileState) {
	if f.pending.Add(-1) != 0 || f.failed.Load() {
		return
	}
	blocks := f.blocks
	if blocks == nil {
		blocks = make([]Block, len(f.slots))
		for i, s := range f.slots {
			blocks[i] = *s
		}
	}
	p.results[f.index] = blocks
	p.filesDone.Add(1)
	p.bar.Detail(fmt.Sprintf("%d/%d files, %d blobs uploaded, %d skipped",
		p.filesDone.Load(), p.files, p.uploaded.Load(), p.skipped.Load()))
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

// prevFile is a regular file of the previous flist at the output path.
type prevFile struct {
	in     Inode
	blocks []Block
}

// loadPrevious reads the flist at path, if there is one, as the record of
// the last pack. Anything unreadable just means no reuse.
func (p *packer) loadPrevious(path string) {
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
	ctx := context.Background()
	blocks := map[int64][]Block{}
	err = r.EachBlock(ctx, func(ino int64, b Block) error {
		blocks[ino] = append(blocks[ino], b)
		return nil
	})
	prev := map[string]prevFile{}
	if err == nil {
		err = r.Walk(ctx, func(path string, in *Inode) error {
			if in.Type() == TypeRegular {
				prev[path] = prevFile{in: *in, blocks: blocks[in.Ino]}
			}
			return nil
		})
	}
	if err != nil {
		p.log.WithError(err).Debug("previous flist unreadable; packing every file")
		return
	}
	p.prev, p.prevWalk = prev, fi.ModTime().Unix()
}

// reusable returns the previous blocks of a file that has not changed: same
// path, size, mode, mtime and ctime, and a ctime and mtime from before the
// second the previous walk started (a change within the second of the stat
// would not show in whole-second times).
func (p *packer) reusable(job fileJob) ([]Block, bool) {
	pf, ok := p.prev[job.fpath]
	cur := &job.in
	if !ok || pf.in.Size != cur.Size || pf.in.Mode != cur.Mode || pf.in.Mtime != cur.Mtime || pf.in.Ctime != cur.Ctime {
		return nil, false
	}
	if pf.in.Ctime >= p.prevWalk || pf.in.Mtime >= p.prevWalk || uint64(len(pf.blocks)) != blocksFor(cur.Size) {
		return nil, false
	}
	return append([]Block{}, pf.blocks...), true // non-nil even for an empty file
}

// askStore settles at once, for stores that can (S3 lists its keys), which
// blobs of the unchanged files the store has; checkReuse then asks only
// about the rest, one by one.
func (p *packer) askStore(ctx context.Context, reuse [][]Block) error {
	b, ok := p.opt.Store.(store.BatchExister)
	if !ok {
		return nil
	}
	seen := map[[HashSize]byte]bool{}
	var ids [][]byte
	for _, blocks := range reuse {
		for _, blk := range blocks {
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
		if permanent(err) {
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
			err = p.retry(ctx, b.ID, "check", func() (err error) {
				exists, err = p.opt.Store.Exists(ctx, b.ID[:])
				return err
			})
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
	blocks := []Block{}
	err := p.eachChunk(f, func(buf *[]byte, n int) error {
		defer p.bufs.Put(buf)
		b, blob, err := enc.Encode((*buf)[:n])
		if err == nil {
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
	var exists bool
	err := p.retry(ctx, id, "check", func() (err error) {
		exists, err = p.opt.Store.Exists(ctx, id[:])
		return err
	})
	if err != nil {
		return err
	}
	if exists {
		p.skipped.Add(1)
		return nil
	}
	if err := p.retry(ctx, id, "upload", func() error { return p.opt.Store.Set(ctx, id[:], blob) }); err != nil {
		return err
	}
	p.uploaded.Add(1)
	p.uploadedBytes.Add(int64(len(blob)))
	return nil
}

func (p *packer) retry(ctx context.Context, id [HashSize]byte, what string, fn func() error) error {
	delay := p.opt.RetryDelay
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || permanent(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= p.opt.Retries {
			return fmt.Errorf("after %d attempts: %w", attempt+1, err)
		}
		// Jitter keeps parallel workers from retrying in lockstep.
		wait := delay/2 + rand.N(delay)
		p.log.WithField("blob", store.Hex(id[:])).Debugf("%s failed (attempt %d), retrying in %s: %v", what, attempt+1, wait, err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		delay = min(delay*2, maxRetryDelay)
	}
}

// permanent reports errors that a retry cannot fix.
func permanent(err error) bool {
	for _, target := range []error{store.ErrAuth, store.ErrNoBucket, store.ErrReadOnly, store.ErrNotSupported,
		store.ErrInvalidURL, store.ErrNotRoutable, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
