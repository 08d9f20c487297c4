package flist

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// ErrVerify is wrapped by the error Verify returns when a blob is missing or
// corrupt or a file's blocks do not match its size.
var ErrVerify = errors.New("flist verification failed")

// VerifyOptions configure Verify. The zero value checks that every blob
// exists in the stores the flist routes to.
type VerifyOptions struct {
	// Deep also fetches every blob, decrypts and decompresses it, and checks
	// BLAKE2b(blob) == id, BLAKE2b(content) == key and the file sizes.
	Deep bool
	// Store overrides the flist's routes.
	Store store.Store
	// Routes says where the flist's routes may lead when Store is nil: the
	// zero value refuses link-local addresses (always), loopback addresses
	// and dir:// routes (see store.RoutePolicy).
	Routes store.RoutePolicy
	// Timeouts bound the network waits of the routed stores; zero fields
	// take httpclient's defaults.
	Timeouts httpclient.Timeouts
	// Log receives the routes used; nil is silent.
	Log logrus.FieldLogger
	// Parallel is the number of blobs checked at once; default DefaultParallel.
	Parallel int
	// Progress, when not nil, reports the blobs checked.
	Progress *progress.Options
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Files  int // regular files
	Blocks int // block rows
	Blobs  int // distinct blobs checked
	// Deep is set when the blobs were fetched and their content checked,
	// not only looked up.
	Deep bool
	// Problems, each "<what>: <file path>", sorted.
	Missing      []string // blob not in its routed store
	Corrupt      []string // blob fails the deep check
	Inconsistent []string // block count (or, deep, content length) does not match the file size
}

// OK reports whether nothing was found wrong.
func (r VerifyReport) OK() bool {
	return len(r.Missing) == 0 && len(r.Corrupt) == 0 && len(r.Inconsistent) == 0
}

// String is a one-line summary. A shallow report says what it did not
// check.
func (r VerifyReport) String() string {
	s := fmt.Sprintf("%d files, %d blocks, %d blobs checked: %d missing, %d corrupt, %d inconsistent",
		r.Files, r.Blocks, r.Blobs, len(r.Missing), len(r.Corrupt), len(r.Inconsistent))
	if !r.Deep {
		s += " (presence only: blob content not fetched, decrypted or hashed; DEEP=1 checks it)"
	}
	return s
}

type verifyFile struct {
	path   string
	size   uint64
	blocks []Block
}

type blobState struct {
	key      [HashSize]byte
	file     string // first file using the blob, for messages
	missing  bool
	corrupt  error
	plainLen int
}

// Verify checks that every block of flist fl is reachable in its routed store
// (deep: intact). It returns an error wrapping ErrVerify when the report is not
// OK, and other errors (an unreadable flist, a store refusing the
// credentials) without a report.
func Verify(ctx context.Context, fl string, opt VerifyOptions) (VerifyReport, error) {
	rep := VerifyReport{Deep: opt.Deep}
	r, err := Open(fl)
	if err != nil {
		return rep, err
	}
	defer r.Close()
	s, err := source{opt.Store, opt.Routes, opt.Timeouts, opt.Log}.open(ctx, r)
	if err != nil {
		return rep, err
	}
	var files []verifyFile
	blobs := map[[HashSize]byte]*blobState{}
	err = r.Walk(ctx, func(p string, in *Inode) error {
		if in.Type() != TypeRegular {
			return nil
		}
		bs, err := r.Blocks(ctx, in.Ino)
		if err != nil {
			return err
		}
		files = append(files, verifyFile{Printable(p), in.Size, bs})
		rep.Blocks += len(bs)
		if uint64(len(bs)) != blocksFor(in.Size) {
			rep.Inconsistent = append(rep.Inconsistent, fmt.Sprintf("%d blocks for %d bytes: %s", len(bs), in.Size, Printable(p)))
		}
		for _, b := range bs {
			if blobs[b.ID] == nil {
				blobs[b.ID] = &blobState{key: b.Key, file: Printable(p)}
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("verify %s: %w", fl, err)
	}
	rep.Files, rep.Blobs = len(files), len(blobs)
	if err := checkBlobs(ctx, s, blobs, opt); err != nil {
		return rep, fmt.Errorf("verify %s: %w", fl, err)
	}
	for id, st := range blobs {
		switch {
		case st.missing:
			rep.Missing = append(rep.Missing, fmt.Sprintf("blob %s: %s", store.Hex(id[:]), st.file))
		case st.corrupt != nil:
			rep.Corrupt = append(rep.Corrupt, fmt.Sprintf("blob %s (%s): %s", store.Hex(id[:]), st.corrupt, st.file))
		}
	}
	if opt.Deep {
		for _, f := range files {
			var n uint64
			complete := true
			for _, b := range f.blocks {
				st := blobs[b.ID]
				complete = complete && !st.missing && st.corrupt == nil
				n += uint64(st.plainLen)
			}
			if complete && n != f.size {
				rep.Inconsistent = append(rep.Inconsistent, fmt.Sprintf("content is %d bytes, size %d: %s", n, f.size, f.path))
			}
		}
	}
	for _, l := range [][]string{rep.Missing, rep.Corrupt, rep.Inconsistent} {
		sort.Strings(l)
	}
	if !rep.OK() {
		first := append(append(append([]string{}, rep.Missing...), rep.Corrupt...), rep.Inconsistent...)[0]
		return rep, fmt.Errorf("verify %s: %s (first: %s): %w", fl, rep, first, ErrVerify)
	}
	return rep, nil
}

// checkBlobs checks every blob with opt.Parallel workers, recording the
// results in the states; it returns only errors that stop the check.
func checkBlobs(ctx context.Context, s store.Store, blobs map[[HashSize]byte]*blobState, opt VerifyOptions) error {
	parallel := opt.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	var bar *progress.Bar
	if opt.Progress != nil {
		bar = progress.Start("verify", int64(len(blobs)), progress.Count, *opt.Progress)
		defer bar.Finish()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ids := make(chan [HashSize]byte)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if err := checkBlob(ctx, s, id, blobs[id], opt.Deep); err != nil {
					once.Do(func() { firstErr = err })
					cancel()
				}
				bar.Add(1)
			}
		}()
	}
send:
	for id := range blobs {
		select {
		case ids <- id:
		case <-ctx.Done():
			break send
		}
	}
	close(ids)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// checkBlob fills in st; each worker writes only the states of its own ids.
func checkBlob(ctx context.Context, s store.Store, id [HashSize]byte, st *blobState, deep bool) error {
	if !deep {
		ok, err := s.Exists(ctx, id[:])
		st.missing = !ok
		return err
	}
	f := fetcher{store: s}
	plain, err := f.fetch(ctx, Block{ID: id, Key: st.key})
	switch {
	case errors.Is(err, store.ErrNotFound):
		st.missing = true
	case errors.Is(err, ErrCorruptBlock):
		st.corrupt = err
	case err != nil:
		return err
	}
	st.plainLen = len(plain)
	return nil
}
