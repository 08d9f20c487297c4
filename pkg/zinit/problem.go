package zinit

import (
	"errors"
	"fmt"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/nearest"
)

// Sentinel errors wrapped by every Problem, for callers that branch on the
// kind of fault with errors.Is.
var (
	// ErrInvalid marks a unit zinit would reject or could not run: a bad
	// value, a missing exec, a YAML error.
	ErrInvalid = errors.New("invalid zinit unit")
	// ErrNotLoaded marks a file zinit would silently ignore although it was
	// meant as a unit: a .yml file, a wrong-case .YAML, a symlinked unit.
	ErrNotLoaded = errors.New("not loaded by zinit")
	// ErrUnknownDependency marks an `after` entry naming no unit; zinit would
	// keep the service blocked forever.
	ErrUnknownDependency = errors.New("unknown dependency")
	// ErrCycle marks a cycle in the `after` graph; zinit has no cycle
	// detection and blocks every service on it forever.
	ErrCycle = errors.New("dependency cycle")
	// ErrIgnored marks warnings: keys or files zinit ignores.
	ErrIgnored = errors.New("ignored by zinit")
)

// Problem is one finding about one unit file or helper script. It reads
// "FILE:LINE: KEY: MSG" and unwraps to one of the sentinel errors above.
type Problem struct {
	File string
	Line int    // 1-based; 0 when unknown
	Key  string // "exec", "signal.stop", "after[2]"; "" for the whole file
	Msg  string
	Err  error
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

func (p *Problem) Unwrap() error { return p.Err }

// Problems flattens an error returned by this package (or one that wraps it)
// into its individual problems, in order.
func Problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			if x := u.Unwrap(); x != nil {
				walk(x)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// joinProblems turns a list of problems into one error (nil when empty).
func joinProblems(ps []*Problem) error {
	if len(ps) == 0 {
		return nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// closest returns the candidate closest to s by edit distance when it is
// close enough to be a likely typo (one edit for short words, two for words
// of six letters or more), else "".
func closest(s string, candidates []string) string {
	limit := 1
	if len(s) >= 6 {
		limit = 2
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := nearest.Distance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
