package flist

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestFlight: concurrent readers of one block share one fetch; a reader
// that gives up does not stop the fetch the others wait for.
func TestFlight(t *testing.T) {
	var f flight
	var fetches atomic.Int32
	release := make(chan struct{})
	fetch := func(ctx context.Context) ([]byte, error) {
		fetches.Add(1)
		<-release
		return []byte("plain"), ctx.Err()
	}
	id := [HashSize]byte{1}
	first, cancelFirst := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		ctx := context.Background()
		if i == 0 {
			ctx = first
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := f.do(ctx, id, fetch)
			if err == nil && string(b) != "plain" {
				err = errors.New("wrong bytes " + string(b))
			}
			results[i] = err
		}()
	}
	// Once every reader waits for the one fetch, the reader that may have
	// started it gives up; then the fetch ends.
	for readers := 0; readers < len(results); runtime.Gosched() {
		f.mu.Lock()
		if c := f.calls[id]; c != nil {
			readers = c.readers
		}
		f.mu.Unlock()
	}
	cancelFirst()
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	for i, err := range results {
		if i == 0 {
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("canceled reader: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("reader %d: %v", i, err)
		}
	}
	if _, err := f.do(context.Background(), id, func(context.Context) ([]byte, error) { return nil, errors.New("again") }); err == nil {
		t.Error("a finished fetch was reused: each read after it must fetch (or hit the cache) again")
	}
}

// TestRecentBlocks: the mount keeps the last recentCount blocks, no more.
func TestRecentBlocks(t *testing.T) {
	var r recentBlocks
	id := func(i int) [HashSize]byte { return [HashSize]byte{byte(i), byte(i >> 8)} }
	for i := range recentCount + 5 {
		r.add(id(i), []byte{byte(i)})
		r.add(id(i), []byte{byte(i)}) // again: no second slot
	}
	for i := range recentCount + 5 {
		b, ok := r.get(id(i))
		if want := i >= 5; ok != want || (ok && b[0] != byte(i)) {
			t.Errorf("block %d: %v %v, want kept=%v", i, b, ok, want)
		}
	}
}
