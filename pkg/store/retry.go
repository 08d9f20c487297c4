package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"
)

// Defaults of RetryOptions.
const (
	DefaultAttempts       = 5
	DefaultBackoff        = 250 * time.Millisecond
	DefaultMaxBackoff     = 4 * time.Second
	DefaultAttemptTimeout = 60 * time.Second
)

// RetryOptions configure NewRetry. The zero value means the defaults: 5
// attempts, waits of 250 ms doubling up to 4 s between them (about 3.75 s
// of waiting in all), and at most 60 s per attempt.
type RetryOptions struct {
	// Attempts is how many times an operation is tried in all; 0 means
	// DefaultAttempts, 1 disables retries.
	Attempts int
	// Backoff is the wait before the second attempt, doubled before each
	// next one up to MaxBackoff. Each wait is jittered to 50-100% of its
	// value so concurrent readers do not retry in lockstep.
	Backoff, MaxBackoff time.Duration
	// AttemptTimeout bounds each attempt, so a server that stops answering
	// costs one attempt and not the whole read; a negative value means no
	// bound beyond the caller's context.
	AttemptTimeout time.Duration
	// OnRetry, when set, is called before each wait with the failed
	// operation ("get", "exists" or "set"), the blob id, the attempt that
	// failed (1-based) and the wait that follows.
	OnRetry func(op string, id []byte, attempt int, wait time.Duration, err error)
}

// Retrying is a Store that retries the failed operations of another store
// with exponential backoff. Errors a retry cannot fix (Permanent) return at
// once, and a done context stops the waiting.
type Retrying struct {
	s   Store
	opt RetryOptions
}

// NewRetry wraps s so that its transient errors are retried.
func NewRetry(s Store, opt RetryOptions) *Retrying {
	if opt.Attempts <= 0 {
		opt.Attempts = DefaultAttempts
	}
	if opt.Backoff <= 0 {
		opt.Backoff = DefaultBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = max(DefaultMaxBackoff, opt.Backoff)
	}
	if opt.AttemptTimeout == 0 {
		opt.AttemptTimeout = DefaultAttemptTimeout
	}
	if local, _ := IsLocal(s); local {
		// A file system call does not watch a context: a deadline per
		// attempt would only cost a timer per blob.
		opt.AttemptTimeout = -1
	}
	return &Retrying{s: s, opt: opt}
}

// Get implements Store.
func (r *Retrying) Get(ctx context.Context, id []byte) ([]byte, error) {
	var blob []byte
	err := r.do(ctx, "get", id, func(ctx context.Context) (err error) {
		blob, err = r.s.Get(ctx, id)
		return err
	})
	return blob, err
}

// Exists implements Store.
func (r *Retrying) Exists(ctx context.Context, id []byte) (bool, error) {
	var ok bool
	err := r.do(ctx, "exists", id, func(ctx context.Context) (err error) {
		ok, err = r.s.Exists(ctx, id)
		return err
	})
	return ok, err
}

// Set implements Store; blobs are content-addressed, so writing one again
// is harmless.
func (r *Retrying) Set(ctx context.Context, id, blob []byte) error {
	return r.do(ctx, "set", id, func(ctx context.Context) error { return r.s.Set(ctx, id, blob) })
}

// Routes implements Store.
func (r *Retrying) Routes() []Route { return r.s.Routes() }

// Local implements Local: the wrapped store's answer.
func (r *Retrying) Local() (local, waits bool) { return IsLocal(r.s) }

// Sync implements Syncer: the wrapped store's Sync, if it has one.
func (r *Retrying) Sync(ctx context.Context) error { return Sync(ctx, r.s) }

func (r *Retrying) do(ctx context.Context, op string, id []byte, fn func(context.Context) error) error {
	delay := r.opt.Backoff
	for attempt := 1; ; attempt++ {
		err := r.attempt(ctx, fn)
		if err == nil || Permanent(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= r.opt.Attempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		wait := delay/2 + rand.N(delay/2+1)
		if r.opt.OnRetry != nil {
			r.opt.OnRetry(op, id, attempt, wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(delay*2, r.opt.MaxBackoff)
	}
}

func (r *Retrying) attempt(ctx context.Context, fn func(context.Context) error) error {
	if r.opt.AttemptTimeout < 0 {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, r.opt.AttemptTimeout)
	defer cancel()
	return fn(ctx)
}

// permanentErrs are the answers a retry cannot change. The errnos are a dir
// store's: a full disk or quota, a read-only file system and a refused
// permission wait for a person, not for the next few seconds.
var permanentErrs = []error{ErrNotFound, ErrAuth, ErrNoBucket, ErrReadOnly, ErrNotSupported,
	ErrInvalidURL, ErrNotRoutable, errEmptyID, context.Canceled,
	syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM}

// Permanent reports whether retrying cannot fix err: every store that was
// asked gave an answer of that kind (not found, refused credentials, no
// bucket, read-only, unsupported or invalid URL, unroutable id, no space
// or no permission on a disk), or the operation was canceled. Router.Get joins the errors of the replicas it
// tried; such an error is permanent only when each part is, so one replica
// that timed out makes it worth retrying even if another said "not found".
// A deadline is not permanent: the deadline of one attempt is what a retry
// is for (the caller's own deadline stops the retries anyway).
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	for _, target := range permanentErrs {
		if err == target { // the chain is walked below, part by part
			return true
		}
	}
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		parts := e.Unwrap()
		for _, part := range parts {
			if !Permanent(part) {
				return false
			}
		}
		return len(parts) > 0
	case interface{ Unwrap() error }:
		return Permanent(e.Unwrap())
	}
	return false
}

var _ Store = (*Retrying)(nil)
