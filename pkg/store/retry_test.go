package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flaky is a store whose Get fails `failures` times with err before it
// answers from the dir store below it.
type flaky struct {
	*Dir
	failures int32
	err      error
	calls    atomic.Int32
	block    bool // block until the context is done instead of failing
}

// Local implements Local: flaky stands for a remote store, which can hang.
func (f *flaky) Local() (local, waits bool) { return false, false }

func (f *flaky) Get(ctx context.Context, id []byte) ([]byte, error) {
	n := f.calls.Add(1)
	if n <= f.failures {
		if f.block {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, f.err
	}
	return f.Dir.Get(ctx, id)
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	transient := fmt.Errorf("dir store: read blob: %w", io.ErrUnexpectedEOF)
	tests := []struct {
		name      string
		failures  int32
		err       error
		attempts  int
		wantErr   error // nil: the blob comes back
		wantCalls int32
	}{
		{"succeeds after transient errors", 3, transient, 5, nil, 4},
		{"gives up after the last attempt", 9, transient, 3, io.ErrUnexpectedEOF, 3},
		{"not found is not retried", 9, fmt.Errorf("x: %w", ErrNotFound), 5, ErrNotFound, 1},
		{"auth is not retried", 9, fmt.Errorf("x: %w", ErrAuth), 5, ErrAuth, 1},
		// A router that got "not found" from one replica and a timeout from
		// another: worth another try.
		{"mixed replica errors are retried", 2, errors.Join(ErrNotFound, transient), 5, nil, 3},
		{"all replicas not found", 9, errors.Join(fmt.Errorf("a: %w", ErrNotFound), ErrNotFound), 5, ErrNotFound, 1},
		// What os.WriteFile returns on a full disk.
		{"a full disk is not retried", 9, &fs.PathError{Op: "write", Path: "blob", Err: syscall.ENOSPC}, 5, syscall.ENOSPC, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDir(t.TempDir())
			if err := d.Set(ctx, id(1), []byte("blob")); err != nil {
				t.Fatal(err)
			}
			f := &flaky{Dir: d, failures: tt.failures, err: tt.err}
			var retries int
			r := NewRetry(f, RetryOptions{Attempts: tt.attempts, Backoff: time.Millisecond,
				OnRetry: func(op string, _ []byte, attempt int, _ time.Duration, err error) {
					retries++
					if op != "get" || attempt != retries || err == nil {
						t.Errorf("OnRetry(%s, attempt %d, %v) as retry %d", op, attempt, err, retries)
					}
				}})
			b, err := r.Get(ctx, id(1))
			if tt.wantErr == nil {
				if err != nil || string(b) != "blob" {
					t.Fatalf("Get = %q, %v; want the blob", b, err)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Get error = %v, want %v", err, tt.wantErr)
			}
			if got := f.calls.Load(); got != tt.wantCalls {
				t.Errorf("%d calls to the store, want %d", got, tt.wantCalls)
			}
			if retries != int(tt.wantCalls)-1 {
				t.Errorf("OnRetry called %d times, want %d", retries, tt.wantCalls-1)
			}
		})
	}
}

// TestRetryAttemptTimeout: a store that hangs costs one bounded attempt,
// and the next attempt gets the blob.
func TestRetryAttemptTimeout(t *testing.T) {
	ctx := context.Background()
	d := NewDir(t.TempDir())
	if err := d.Set(ctx, id(2), []byte("blob")); err != nil {
		t.Fatal(err)
	}
	f := &flaky{Dir: d, failures: 1, block: true}
	r := NewRetry(f, RetryOptions{Backoff: time.Millisecond, AttemptTimeout: 20 * time.Millisecond})
	if b, err := r.Get(ctx, id(2)); err != nil || string(b) != "blob" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	if f.calls.Load() != 2 {
		t.Errorf("%d calls, want 2", f.calls.Load())
	}
}

// TestRetryLocalNoAttemptTimeout: a local store's attempts get no deadline
// of their own (a file system call does not watch it), the caller's only.
func TestRetryLocalNoAttemptTimeout(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name         string
		s            Store
		wantDeadline bool
	}{
		{"local", NewDir(t.TempDir()), false},
		{"remote", &flaky{Dir: NewDir(t.TempDir())}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRetry(tt.s, RetryOptions{AttemptTimeout: time.Minute})
			var deadline bool
			_ = r.do(ctx, "get", id(4), func(ctx context.Context) error {
				_, deadline = ctx.Deadline()
				return nil
			})
			if deadline != tt.wantDeadline {
				t.Errorf("attempt deadline %v, want %v", deadline, tt.wantDeadline)
			}
		})
	}
}

// TestRetryStopsWithContext: a canceled caller stops the backoff at once.
func TestRetryStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &flaky{Dir: NewDir(t.TempDir()), failures: 100, err: io.ErrUnexpectedEOF}
	r := NewRetry(f, RetryOptions{Attempts: 100, Backoff: time.Hour,
		OnRetry: func(string, []byte, int, time.Duration, error) { cancel() }})
	if _, err := r.Get(ctx, id(3)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Get error = %v", err)
	}
	if f.calls.Load() != 1 {
		t.Errorf("%d calls after cancel, want 1", f.calls.Load())
	}
}

func TestPermanent(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{io.EOF, false},
		{context.DeadlineExceeded, false},
		{context.Canceled, true},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", ErrAuth)), true},
		{errors.Join(ErrNotFound, ErrAuth), true},
		{errors.Join(ErrNotFound, io.EOF), false},
		{fmt.Errorf("%w and %w", ErrNotFound, io.EOF), false},
		{fmt.Errorf("wrapped: %w", errors.Join(ErrNotFound, fmt.Errorf("x: %w", ErrNotFound))), true},
		{fmt.Errorf("put: %w", &fs.PathError{Op: "open", Path: "p", Err: syscall.EACCES}), true},
		{&fs.PathError{Op: "write", Path: "p", Err: syscall.EIO}, false},
	}
	for _, tt := range tests {
		if got := Permanent(tt.err); got != tt.want {
			t.Errorf("Permanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
