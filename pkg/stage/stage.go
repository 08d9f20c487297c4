// Package stage runs a build as named stages and makes reruns incremental by
// content: after a stage succeeds it records a fingerprint of everything it
// read (config values, the content of input files and folders, and the run
// identities of the stages it depends on). A later run skips a stage whose
// fingerprint is unchanged and whose outputs still exist, and reruns it, with
// everything downstream, as soon as anything it read changed.
//
// A marker is written only after a stage succeeds, atomically; the marker of
// a stage is removed before it starts, so a stage interrupted by SIGINT or
// SIGKILL simply runs again next time. An exclusive lock on the state folder
// keeps two builds from sharing a work tree.
package stage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/hosttools"
)

// Stage is one step of the build.
type Stage struct {
	Name string
	// Deps are the stages that must have succeeded before this one; a rerun
	// of any of them makes this stage stale.
	Deps []string
	// Config holds the config keys this stage reads, with their values.
	Config map[string]string
	// Inputs are files and folders whose content this stage reads. A missing
	// input is fingerprinted as absent, so creating it later reruns the stage.
	Inputs []string
	// Outputs are files or folders the stage produces; if one disappears the
	// stage is stale even though its inputs did not change.
	Outputs []string
	// Tools are the host programs Run cannot work without; RunGraph checks
	// them, for every stage it may run, before any stage starts.
	Tools []hosttools.Tool
	// Run does the work. It must be idempotent and able to start over from
	// whatever a killed earlier run left behind. log names the stage on
	// every line: hand it to the packages the stage calls.
	Run func(ctx context.Context, log logrus.FieldLogger) error
}

// Options configure an Engine.
type Options struct {
	// Dir is the state folder (markers, lock, hash cache).
	Dir string
	// Root shortens paths in messages (relative to it); optional.
	Root string
	// Force reruns every stage once in this process (FORCE=1).
	Force bool
	// Log receives one line when a stage starts (with why), one when it
	// finishes (with its duration), and one for a skipped stage; each
	// stage's Run gets it with the stage's name in logging.StageField.
	Log logrus.FieldLogger
}

// Engine runs stages against one state folder. It is safe for concurrent
// use by stages that run in parallel.
type Engine struct {
	opt    Options
	hashes *hashCache

	lockOnce sync.Once
	lock     *Lock
	lockErr  error

	mu     sync.Mutex
	forced map[string]bool // stages already forced in this process
}

// Open prepares the state folder. It does not take the lock: reading the
// status of a build that is running is fine; Run and Reset take it.
func Open(opt Options) (*Engine, error) {
	opt.Log = logging.OrDiscard(opt.Log)
	if err := os.MkdirAll(filepath.Join(opt.Dir, "stages"), 0o755); err != nil {
		return nil, fmt.Errorf("create state folder: %w", err)
	}
	return &Engine{
		opt:    opt,
		hashes: loadHashCache(filepath.Join(opt.Dir, "hashcache.json")),
		forced: map[string]bool{},
	}, nil
}

// Lock takes the build lock for the life of the process (idempotent).
func (e *Engine) Lock() error {
	e.lockOnce.Do(func() { e.lock, e.lockErr = AcquireLock(filepath.Join(e.opt.Dir, "lock")) })
	return e.lockErr
}

// Close saves the hash cache and releases the lock.
func (e *Engine) Close() error {
	err := e.hashes.save()
	if e.lock != nil {
		err = errors.Join(err, e.lock.Release())
	}
	return err
}

// ErrCancelled is wrapped by the error of a stage that was stopped, or not
// started, because the context was cancelled: another stage of the same run
// failed first, or the build was interrupted.
var ErrCancelled = errors.New("cancelled")

// ErrDependency is wrapped by the error of a stage that was not run because
// a stage it depends on has no success marker.
var ErrDependency = errors.New("dependency has not succeeded")

// Error is the error of a stage, as Run and RunGraph return it.
type Error struct {
	Stage string
	Err   error
}

func (e *Error) Error() string { return "stage " + e.Stage + ": " + e.Err.Error() }

// Unwrap gives the stage's own error.
func (e *Error) Unwrap() error { return e.Err }

// Run runs s unless it is up to date. It refuses to run s while a stage s
// depends on has no success marker, and does not start it once ctx is
// cancelled. A run stopped by ctx is recorded as cancelled, not failed. The
// returned error is an *Error naming the stage.
func (e *Engine) Run(ctx context.Context, s Stage) error {
	if err := e.Lock(); err != nil {
		return err
	}
	fail := func(err error) error { return &Error{Stage: s.Name, Err: err} }
	if ctx.Err() != nil {
		return fail(fmt.Errorf("%w before it started: %s", ErrCancelled, cancelReason(ctx)))
	}
	if err := e.checkDeps(s); err != nil {
		return fail(err)
	}
	log := e.opt.Log.WithField(logging.StageField, s.Name)
	cur, err := e.inputs(s)
	if err != nil {
		return fail(err)
	}
	why := e.staleReason(s, cur)
	if e.takeForce(s.Name) {
		why = "FORCE=1"
	}
	if why == "" {
		log.Info("up to date")
		return nil
	}
	if ctx.Err() != nil { // cancelled while the inputs were hashed
		return fail(fmt.Errorf("%w before it started: %s", ErrCancelled, cancelReason(ctx)))
	}
	log.Infof("running (%s)", why)

	// Forget the old result before touching anything: if this run is killed,
	// the next one must not mistake half-written outputs for done.
	m := marker{Name: s.Name, Inputs: cur, Fingerprint: cur.fingerprint(), Started: time.Now().UTC()}
	if err := e.removeMarker(s.Name); err != nil {
		return fail(err)
	}
	if err := e.writeRecord(runningPath(e.opt.Dir, s.Name), m); err != nil {
		return fail(err)
	}
	runCtx, cache := withCacheReport(ctx)
	runErr := s.Run(runCtx, log)
	took := time.Since(m.Started)
	m.Cache = cache.result()
	m.DurationMS = took.Milliseconds()
	_ = os.Remove(runningPath(e.opt.Dir, s.Name))
	if ctx.Err() != nil {
		// Whatever the stage returned, it was stopped (or may have stopped
		// early) because of the cancellation: not a failure of its own.
		reason := cancelReason(ctx)
		m.Error, m.Cancelled = reason, true
		log.Warnf("cancelled after %s: %s", took.Round(10*time.Millisecond), reason)
		runErr = fmt.Errorf("%w: %s", ErrCancelled, reason)
	} else if runErr != nil {
		m.Error = runErr.Error()
	}
	if runErr != nil {
		if err := e.writeRecord(failedPath(e.opt.Dir, s.Name), m); err != nil {
			return errors.Join(fail(runErr), err)
		}
		return fail(runErr)
	}
	m.RunID = newRunID()
	if err := flushOutputs(s); err != nil {
		return fail(err)
	}
	if err := e.writeRecord(markerPath(e.opt.Dir, s.Name), m); err != nil {
		return fail(fmt.Errorf("record success: %w", err))
	}
	_ = os.Remove(failedPath(e.opt.Dir, s.Name))
	if err := e.hashes.save(); err != nil {
		log.Debugf("save hash cache: %v", err)
	}
	log.Infof("done in %s%s", took.Round(10*time.Millisecond), m.Cache.logSuffix())
	return nil
}

// cancelReason says why ctx was cancelled: the stage that failed first, or
// an interruption.
func cancelReason(ctx context.Context) string {
	var first *Error
	if errors.As(context.Cause(ctx), &first) {
		return "stage " + first.Stage + " failed"
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "the build timed out"
	}
	return "the build was interrupted"
}

// checkDeps fails unless every stage s depends on has a success marker.
func (e *Engine) checkDeps(s Stage) error {
	for _, d := range s.Deps {
		if _, err := readMarker(markerPath(e.opt.Dir, d)); err == nil {
			continue
		}
		why := "it has never run"
		if f, err := readMarker(failedPath(e.opt.Dir, d)); err == nil {
			why = "its last run failed: " + firstLine(f.Error)
			if f.Cancelled {
				why = "its last run was cancelled: " + firstLine(f.Error)
			}
		}
		return fmt.Errorf("%w: needs stage %s first, and %s", ErrDependency, d, why)
	}
	return nil
}

// takeForce reports whether FORCE=1 still applies to the stage: once per
// stage per process, so a stage reached by two runs of one process runs once.
func (e *Engine) takeForce(name string) bool {
	if !e.opt.Force {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	first := !e.forced[name]
	e.forced[name] = true
	return first
}

// staleReason returns why s must run, or "" when it is up to date.
func (e *Engine) staleReason(s Stage, cur inputSet) string {
	old, err := readMarker(markerPath(e.opt.Dir, s.Name))
	if err != nil {
		if f, ferr := readMarker(failedPath(e.opt.Dir, s.Name)); ferr == nil {
			if f.Cancelled {
				return "the previous run was cancelled: " + firstLine(f.Error)
			}
			return "the previous run failed: " + firstLine(f.Error)
		}
		if _, rerr := os.Stat(runningPath(e.opt.Dir, s.Name)); rerr == nil {
			return "the previous run was interrupted"
		}
		return "never run"
	}
	if why := cur.diff(old.Inputs, e.opt.Root); why != "" {
		return why
	}
	for _, out := range s.Outputs {
		if _, err := os.Lstat(out); err != nil {
			return "output " + e.rel(out) + " is missing"
		}
	}
	return ""
}

func (e *Engine) rel(p string) string { return relTo(e.opt.Root, p) }

func relTo(root, p string) string {
	if root == "" {
		return p
	}
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// inputs collects the current value of everything s reads.
func (e *Engine) inputs(s Stage) (inputSet, error) {
	set := inputSet{}
	for k, v := range s.Config {
		set["config "+k] = v
	}
	for _, d := range s.Deps {
		m, err := readMarker(markerPath(e.opt.Dir, d))
		if err != nil {
			// Not run yet (status of a fresh tree) or failed: nothing to
			// compare, so this stage cannot be up to date.
			set["stage "+d] = "not run"
			continue
		}
		set["stage "+d] = m.RunID
	}
	for _, p := range s.Inputs {
		h, err := e.hashes.tree(p)
		if err != nil {
			return nil, fmt.Errorf("fingerprint %s: %w", e.rel(p), err)
		}
		set["path "+p] = h
	}
	return set, nil
}

// Reset forgets stage name and every stage downstream of it among stages,
// so the next build reruns them (the original build.sh --rebuild-from). It
// returns the names it forgot.
func (e *Engine) Reset(stages []Stage, name string) ([]string, error) {
	if err := e.Lock(); err != nil {
		return nil, err
	}
	down, err := Downstream(stages, name)
	if err != nil {
		return nil, err
	}
	for _, n := range down {
		if err := e.removeMarker(n); err != nil {
			return nil, err
		}
		_ = os.Remove(failedPath(e.opt.Dir, n))
	}
	return down, nil
}

// Downstream returns name and every stage that depends on it directly or
// indirectly, in the order of stages.
func Downstream(stages []Stage, name string) ([]string, error) {
	known := map[string]bool{}
	for _, s := range stages {
		known[s.Name] = true
	}
	if !known[name] {
		var names []string
		for n := range known {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("unknown stage %q (stages: %s)", name, strings.Join(names, ", "))
	}
	hit := map[string]bool{name: true}
	for changed := true; changed; {
		changed = false
		for _, s := range stages {
			if hit[s.Name] {
				continue
			}
			for _, d := range s.Deps {
				if hit[d] {
					hit[s.Name], changed = true, true
					break
				}
			}
		}
	}
	var out []string
	for _, s := range stages {
		if hit[s.Name] {
			out = append(out, s.Name)
		}
	}
	return out, nil
}

func newRunID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
