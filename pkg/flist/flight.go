package flist

import (
	"context"
	"sync"
)

// flight makes concurrent reads of one block share one fetch. The kernel
// reads a file in 128 KiB requests, several at once with readahead, so
// without it most 512 KiB blocks of a cold file are fetched two or more
// times.
type flight struct {
	mu    sync.Mutex
	calls map[[HashSize]byte]*flightCall
}

type flightCall struct {
	done    chan struct{}
	plain   []byte
	err     error
	readers int // callers that asked for this fetch
}

// do returns fetch's result for id, starting fetch only if no fetch of id
// is under way. The fetch does not stop when the caller that started it
// gives up (its bounds are the store's); each caller stops waiting when its
// own ctx is done.
func (f *flight) do(ctx context.Context, id [HashSize]byte, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	f.mu.Lock()
	c, ok := f.calls[id]
	if !ok {
		if f.calls == nil {
			f.calls = map[[HashSize]byte]*flightCall{}
		}
		c = &flightCall{done: make(chan struct{})}
		f.calls[id] = c
		go func() {
			c.plain, c.err = fetch(context.WithoutCancel(ctx))
			f.mu.Lock()
			delete(f.calls, id)
			f.mu.Unlock()
			close(c.done)
		}()
	}
	c.readers++
	f.mu.Unlock()
	select {
	case <-c.done:
		return c.plain, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
