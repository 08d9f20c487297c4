package stage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/hosttools"
)

// fakeGraph builds stages whose Run is given by the test, each writing
// NAME.out in dir when its Run succeeds.
type fakeGraph struct {
	dir  string
	mu   sync.Mutex
	runs []string
}

func (g *fakeGraph) stage(name string, deps []string, run func(ctx context.Context) error) Stage {
	out := filepath.Join(g.dir, name+".out")
	return Stage{Name: name, Deps: deps, Outputs: []string{out}, Run: func(ctx context.Context, _ logrus.FieldLogger) error {
		g.mu.Lock()
		g.runs = append(g.runs, name)
		g.mu.Unlock()
		if err := run(ctx); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(name), 0o644)
	}}
}

func (g *fakeGraph) ran() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.runs)
}

func ok(context.Context) error { return nil }

// waitCancelled blocks until ctx is cancelled, as a long stage (a kernel
// build) that honours its context does; the minute only keeps a broken
// scheduler from hanging the test.
func waitCancelled(saw *error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			*saw = context.Cause(ctx)
			return ctx.Err()
		case <-time.After(time.Minute):
			return errors.New("never cancelled")
		}
	}
}

func TestRunGraphFailsFast(t *testing.T) {
	g := &fakeGraph{dir: t.TempDir()}
	e, logs := open(t, t.TempDir(), false)
	boom := errors.New("apk: no such package")
	var slowSaw, stubbornSaw error
	stages := []Stage{
		g.stage("extract", nil, ok),
		g.stage("packages", []string{"extract"}, func(context.Context) error { return boom }),
		g.stage("modules", nil, waitCancelled(&slowSaw)),
		// Returns an error of its own once stopped: still cancelled, not failed.
		g.stage("components", nil, func(ctx context.Context) error {
			waitCancelled(&stubbornSaw)(ctx)
			return errors.New("cargo: signal: killed")
		}),
		g.stage("copy", []string{"packages", "components"}, ok),
		g.stage("image", []string{"copy", "modules"}, ok),
	}
	err := e.RunGraph(context.Background(), stages, "image")

	var se *Error
	if !errors.As(err, &se) || se.Stage != "packages" || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the failure of stage packages", err)
	}
	if slowSaw == nil || stubbornSaw == nil {
		t.Fatalf("running siblings were not cancelled: modules saw %v, components saw %v", slowSaw, stubbornSaw)
	}
	if !errors.Is(slowSaw, boom) {
		t.Errorf("the cancel cause is %v, want the first failure", slowSaw)
	}
	for _, name := range []string{"copy", "image"} {
		if slices.Contains(g.ran(), name) {
			t.Errorf("%s ran although an upstream stage failed", name)
		}
	}
	for _, name := range []string{"modules", "components"} {
		if _, err := os.Stat(markerPath(e.opt.Dir, name)); err == nil {
			t.Errorf("cancelled stage %s has a success marker", name)
		}
	}
	rows, err := e.Status(stages)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]State{"extract": Done, "packages": Failed, "modules": Cancelled, "components": Cancelled, "copy": Never, "image": Never}
	for _, r := range rows {
		if r.State != want[r.Name] {
			t.Errorf("status %s = %s (%s), want %s", r.Name, r.State, r.Why, want[r.Name])
		}
		if r.State == Cancelled && r.Why != "stage packages failed" {
			t.Errorf("status %s says %q", r.Name, r.Why)
		}
	}
	if !strings.Contains(logs.String(), "cancelled after") || !strings.Contains(logs.String(), "stage packages failed") {
		t.Errorf("the log does not report the cancellation:\n%s", logs)
	}

	// Next time the cancelled stages rerun, saying why.
	logs.Reset()
	stages[1] = g.stage("packages", []string{"extract"}, ok)
	stages[2] = g.stage("modules", nil, ok)
	stages[3] = g.stage("components", nil, ok)
	if err := e.RunGraph(context.Background(), stages, "image"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "the previous run was cancelled: stage packages failed") {
		t.Errorf("the rerun does not say why:\n%s", logs)
	}
}

// Independent stages run at the same time; a stage shared by two paths runs
// once, after both of its dependencies.
func TestRunGraphParallelAndOnce(t *testing.T) {
	g := &fakeGraph{dir: t.TempDir()}
	e, _ := open(t, t.TempDir(), false)
	// Each of left and right waits until both have started: if they ran
	// one after the other, the first would give up.
	var arrived sync.WaitGroup
	arrived.Add(2)
	barrier := func(context.Context) error {
		arrived.Done()
		both := make(chan struct{})
		go func() { arrived.Wait(); close(both) }()
		select {
		case <-both:
			return nil
		case <-time.After(time.Minute):
			return errors.New("the sibling never started: independent stages ran one after the other")
		}
	}
	stages := []Stage{
		g.stage("root", nil, ok),
		g.stage("left", []string{"root"}, barrier),
		g.stage("right", []string{"root"}, barrier),
		g.stage("join", []string{"left", "right"}, ok),
	}
	if err := e.RunGraph(context.Background(), stages, "join", "left"); err != nil {
		t.Fatal(err)
	}
	runs := g.ran()
	if len(runs) != 4 || runs[0] != "root" || runs[3] != "join" {
		t.Errorf("runs = %v, want root first, join last, each once", runs)
	}
}

func TestRunGraphRejectsBadGraphs(t *testing.T) {
	e, _ := open(t, t.TempDir(), false)
	g := &fakeGraph{dir: t.TempDir()}
	tests := []struct {
		name   string
		stages []Stage
		goal   string
		want   string
	}{
		{"unknown goal", []Stage{g.stage("a", nil, ok)}, "nope", `unknown stage "nope" (stages: a)`},
		{"unknown dep", []Stage{g.stage("a", []string{"ghost"}, ok)}, "a", `stage a depends on unknown stage "ghost"`},
		{"cycle", []Stage{g.stage("a", []string{"b"}, ok), g.stage("b", []string{"a"}, ok)}, "a", "cycle: a -> b -> a"},
		{"missing tool", []Stage{{Name: "a", Tools: []hosttools.Tool{{Name: "zosbuilder-no-such-tool", Debian: "x", Alpine: "x"}},
			Run: func(context.Context, logrus.FieldLogger) error { t.Error("ran without its tool"); return nil }}}, "a", "zosbuilder-no-such-tool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.RunGraph(context.Background(), tt.stages, tt.goal)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if len(g.ran()) != 0 {
		t.Errorf("stages ran: %v", g.ran())
	}
}

// Run refuses a stage whose dependency has not succeeded, naming it and why.
func TestRunNeedsDependencyMarker(t *testing.T) {
	g := &fakeGraph{dir: t.TempDir()}
	e, _ := open(t, t.TempDir(), false)
	b := g.stage("b", []string{"a"}, ok)
	err := e.Run(context.Background(), b)
	if !errors.Is(err, ErrDependency) || !strings.Contains(err.Error(), "stage b: dependency has not succeeded: needs stage a first, and it has never run") {
		t.Errorf("err = %v", err)
	}
	e.Run(context.Background(), g.stage("a", nil, func(context.Context) error { return errors.New("boom") }))
	err = e.Run(context.Background(), b)
	if !errors.Is(err, ErrDependency) || !strings.Contains(err.Error(), "its last run failed: boom") {
		t.Errorf("err = %v", err)
	}
	if len(g.ran()) != 1 {
		t.Errorf("runs = %v, want only a", g.ran())
	}
	if err := e.Run(context.Background(), g.stage("a", nil, ok)); err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background(), b); err != nil {
		t.Errorf("after a succeeded: %v", err)
	}
}

// An interrupted build (the caller's context) reports the interruption and
// records the running stage as cancelled.
func TestRunGraphInterrupted(t *testing.T) {
	g := &fakeGraph{dir: t.TempDir()}
	e, _ := open(t, t.TempDir(), false)
	ctx, cancel := context.WithCancel(context.Background())
	var saw error
	stages := []Stage{g.stage("long", nil, func(ctx context.Context) error {
		cancel()
		return waitCancelled(&saw)(ctx)
	})}
	err := e.RunGraph(ctx, stages, "long")
	if err == nil || !strings.Contains(err.Error(), "the build was interrupted") {
		t.Errorf("err = %v", err)
	}
	rows, _ := e.Status(stages)
	if rows[0].State != Cancelled || rows[0].Why != "the build was interrupted" {
		t.Errorf("status = %+v", rows[0])
	}
}
