package stage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/hosttools"
)

// RunGraph runs the goal stages and every stage they depend on, each once
// and as soon as the stages it depends on have succeeded, so stages that do
// not depend on each other run in parallel. stages must hold every stage
// reached from the goals. The host tools of all those stages are checked
// before any starts.
//
// The first stage that fails cancels the others through the context they
// share (context.WithCancelCause): stages still waiting are not started, and
// running ones are stopped and recorded as cancelled. The returned error is
// that first failure, an *Error naming its stage; it comes as soon as the
// running stages have stopped, not when the slowest would have finished.
func (e *Engine) RunGraph(ctx context.Context, stages []Stage, goals ...string) error {
	need, err := closure(stages, goals)
	if err != nil {
		return err
	}
	var tools []hosttools.Tool
	for _, s := range need {
		tools = append(tools, s.Tools...)
	}
	if err := hosttools.Check(tools); err != nil {
		return err
	}
	if err := e.Lock(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type result struct {
		done chan struct{}
		ok   bool // written before done is closed
	}
	results := make(map[string]*result, len(need))
	for _, s := range need {
		results[s.Name] = &result{done: make(chan struct{})}
	}
	var wg sync.WaitGroup
	for _, s := range need {
		r := results[s.Name]
		wg.Go(func() {
			defer close(r.done)
			for _, d := range s.Deps {
				<-results[d].done
				if !results[d].ok {
					return // the failure that stopped d is reported
				}
			}
			if ctx.Err() != nil {
				return
			}
			err := e.Run(ctx, s)
			if err != nil && !errors.Is(err, ErrCancelled) {
				cancel(err) // only the first cause is kept
				if context.Cause(ctx) != err {
					// Returned is the first failure; say this one here.
					e.opt.Log.WithField(logging.StageField, s.Name).Errorf("failed too: %v", err)
				}
			}
			r.ok = err == nil
		})
	}
	wg.Wait()
	var first *Error
	switch cause := context.Cause(ctx); {
	case errors.As(cause, &first):
		return cause
	case ctx.Err() != nil:
		for _, r := range results {
			if !r.ok {
				return fmt.Errorf("%s: %w", cancelReason(ctx), cause)
			}
		}
	}
	return nil
}

// closure returns the goals and every stage they depend on, in the order of
// stages, after checking that every name is known and there is no cycle.
func closure(stages []Stage, goals []string) ([]Stage, error) {
	byName := make(map[string]Stage, len(stages))
	var names []string
	for _, s := range stages {
		byName[s.Name] = s
		names = append(names, s.Name)
	}
	const (
		visiting = 1
		visited  = 2
	)
	state := map[string]int{}
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		s, ok := byName[name]
		if !ok {
			if len(path) > 0 {
				return fmt.Errorf("stage %s depends on unknown stage %q", path[len(path)-1], name)
			}
			return fmt.Errorf("unknown stage %q (stages: %s)", name, strings.Join(names, ", "))
		}
		switch state[name] {
		case visiting:
			return fmt.Errorf("stage dependency cycle: %s -> %s", strings.Join(path, " -> "), name)
		case visited:
			return nil
		}
		state[name] = visiting
		for _, d := range s.Deps {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = visited
		return nil
	}
	for _, g := range goals {
		if err := visit(g, nil); err != nil {
			return nil, err
		}
	}
	var out []Stage
	for _, s := range stages {
		if state[s.Name] == visited {
			out = append(out, s)
		}
	}
	return out, nil
}
