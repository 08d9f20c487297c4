package stage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// pipeline is a three-stage chain a -> b -> c over files in dir; each Run
// appends the stage name to runs.
type pipeline struct {
	dir    string
	runs   []string
	config map[string]string
	fail   map[string]error
}

func newPipeline(t *testing.T) *pipeline {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.in"), []byte("a1"), 0o644)
	os.MkdirAll(filepath.Join(dir, "b.in"), 0o755)
	os.WriteFile(filepath.Join(dir, "b.in", "unit.yaml"), []byte("exec: x"), 0o644)
	return &pipeline{dir: dir, config: map[string]string{"K": "v1"}, fail: map[string]error{}}
}

func (p *pipeline) stages() []Stage {
	mk := func(name string, deps []string, cfg map[string]string, inputs ...string) Stage {
		return Stage{
			Name: name, Deps: deps, Config: cfg,
			Inputs:  inputs,
			Outputs: []string{filepath.Join(p.dir, name+".out")},
			Run: func(ctx context.Context, _ logrus.FieldLogger) error {
				p.runs = append(p.runs, name)
				if err := p.fail[name]; err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(p.dir, name+".out"), []byte(name), 0o644)
			},
		}
	}
	return []Stage{
		mk("a", nil, map[string]string{"K": p.config["K"]}, filepath.Join(p.dir, "a.in")),
		mk("b", []string{"a"}, nil, filepath.Join(p.dir, "b.in")),
		mk("c", []string{"b"}, nil),
	}
}

func (p *pipeline) build(t *testing.T, e *Engine) error {
	t.Helper()
	p.runs = nil
	for _, s := range p.stages() {
		if err := e.Run(context.Background(), s); err != nil {
			return err
		}
	}
	return nil
}

func open(t *testing.T, dir string, force bool) (*Engine, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	e, err := Open(Options{Dir: dir, Force: force, Log: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, &logs
}

func TestIncremental(t *testing.T) {
	tests := []struct {
		name    string
		change  func(p *pipeline)
		want    []string
		logHint string
	}{
		{"nothing changed", func(p *pipeline) {}, nil, "up to date"},
		{"config value", func(p *pipeline) { p.config["K"] = "v2" }, []string{"a", "b", "c"}, "K changed: v1 -> v2"},
		{"first input file", func(p *pipeline) { os.WriteFile(filepath.Join(p.dir, "a.in"), []byte("a2"), 0o644) }, []string{"a", "b", "c"}, "a.in changed"},
		{"file in input folder", func(p *pipeline) {
			os.WriteFile(filepath.Join(p.dir, "b.in", "unit.yaml"), []byte("exec: y"), 0o644)
		}, []string{"b", "c"}, "b.in changed"},
		{"file added to input folder", func(p *pipeline) {
			os.WriteFile(filepath.Join(p.dir, "b.in", "new.yaml"), nil, 0o644)
		}, []string{"b", "c"}, "b.in changed"},
		{"input mode", func(p *pipeline) { os.Chmod(filepath.Join(p.dir, "b.in", "unit.yaml"), 0o755) }, []string{"b", "c"}, "b.in changed"},
		{"input removed", func(p *pipeline) { os.Remove(filepath.Join(p.dir, "a.in")) }, []string{"a", "b", "c"}, "a.in was removed"},
		{"output deleted", func(p *pipeline) { os.Remove(filepath.Join(p.dir, "c.out")) }, []string{"c"}, "c.out is missing"},
		{"middle output deleted", func(p *pipeline) { os.Remove(filepath.Join(p.dir, "b.out")) }, []string{"b", "c"}, "upstream b reran"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipeline(t)
			state := t.TempDir()
			e, logs := open(t, state, false)
			if err := p.build(t, e); err != nil {
				t.Fatal(err)
			}
			if strings.Join(p.runs, ",") != "a,b,c" {
				t.Fatalf("first build ran %v", p.runs)
			}
			tt.change(p)
			logs.Reset()
			if err := p.build(t, e); err != nil {
				t.Fatal(err)
			}
			if strings.Join(p.runs, ",") != strings.Join(tt.want, ",") {
				t.Errorf("rerun ran %v, want %v\nlog:\n%s", p.runs, tt.want, logs)
			}
			if !strings.Contains(logs.String(), tt.logHint) {
				t.Errorf("log does not say %q:\n%s", tt.logHint, logs)
			}
			// And a third build is a no-op again.
			if err := p.build(t, e); err != nil || len(p.runs) != 0 {
				t.Errorf("third build ran %v, err %v", p.runs, err)
			}
		})
	}
}

func TestFailedStageRerunsAndBlocksDownstream(t *testing.T) {
	p := newPipeline(t)
	state := t.TempDir()
	e, logs := open(t, state, false)
	boom := errors.New("boom")
	p.fail["b"] = boom
	err := p.build(t, e)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "stage b") {
		t.Fatalf("build error = %v", err)
	}
	rows, err := e.Status(p.stages())
	if err != nil {
		t.Fatal(err)
	}
	want := []State{Done, Failed, Never}
	for i, r := range rows {
		if r.State != want[i] {
			t.Errorf("status %s = %s, want %s", r.Name, r.State, want[i])
		}
	}
	delete(p.fail, "b")
	logs.Reset()
	if err := p.build(t, e); err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.runs, ",") != "b,c" {
		t.Errorf("after fixing, ran %v", p.runs)
	}
	if !strings.Contains(logs.String(), "previous run failed: boom") {
		t.Errorf("log does not give the reason:\n%s", logs)
	}
}

func TestForceAndReset(t *testing.T) {
	p := newPipeline(t)
	state := t.TempDir()
	e, _ := open(t, state, false)
	if err := p.build(t, e); err != nil {
		t.Fatal(err)
	}
	e.Close()

	forced, logs := open(t, state, true)
	if err := p.build(t, forced); err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.runs, ",") != "a,b,c" || !strings.Contains(logs.String(), "FORCE=1") {
		t.Errorf("FORCE ran %v:\n%s", p.runs, logs)
	}
	forced.Close()

	e, _ = open(t, state, false)
	got, err := e.Reset(p.stages(), "b")
	if err != nil || strings.Join(got, ",") != "b,c" {
		t.Fatalf("Reset = %v, %v", got, err)
	}
	if err := p.build(t, e); err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.runs, ",") != "b,c" {
		t.Errorf("after reset b, ran %v", p.runs)
	}
	if _, err := e.Reset(p.stages(), "nope"); err == nil || !strings.Contains(err.Error(), "a, b, c") {
		t.Errorf("Reset of unknown stage: %v", err)
	}
}

func TestStatusTable(t *testing.T) {
	p := newPipeline(t)
	e, _ := open(t, t.TempDir(), false)
	if err := p.build(t, e); err != nil {
		t.Fatal(err)
	}
	p.config["K"] = "v2"
	rows, err := e.Status(p.stages())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	PrintStatus(&out, rows)
	for _, want := range []string{"STAGE", "K changed: v1 -> v2", "upstream a is stale", "upstream b is stale"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status table lacks %q:\n%s", want, out.String())
		}
	}
	if len(p.runs) != 3 {
		t.Errorf("Status ran stages: %v", p.runs)
	}
}

// The helper process modes below let the tests kill a real build process.
func TestMain(m *testing.M) {
	switch os.Getenv("STAGE_TEST_HELPER") {
	case "hang":
		helperHang()
	case "hold-lock":
		l, err := AcquireLock(os.Getenv("STAGE_TEST_LOCK"))
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		l.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperHang runs stage "a" whose Run writes half an output then blocks
// until the parent kills the process.
func helperHang() {
	e, err := Open(Options{Dir: os.Getenv("STAGE_TEST_STATE")})
	if err != nil {
		os.Exit(3)
	}
	out := os.Getenv("STAGE_TEST_OUT")
	e.Run(context.Background(), Stage{Name: "a", Outputs: []string{out}, Run: func(ctx context.Context, _ logrus.FieldLogger) error {
		os.WriteFile(out, []byte("half"), 0o644)
		os.Stdout.WriteString("started\n")
		time.Sleep(time.Minute)
		return nil
	}})
	os.Exit(0)
}

func startHelper(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "STAGE_TEST_HELPER="+mode), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 64)
	n, _ := stdout.Read(buf) // blocks until the helper reached its point
	if n == 0 {
		t.Fatalf("helper %s printed nothing", mode)
	}
	return cmd
}

func TestInterruptedStageRerunsAndEndsTheSame(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			state, dir := t.TempDir(), t.TempDir()
			out := filepath.Join(dir, "a.out")
			cmd := startHelper(t, "hang", "STAGE_TEST_STATE="+state, "STAGE_TEST_OUT="+out)
			cmd.Process.Signal(sig)
			cmd.Wait()

			e, logs := open(t, state, false)
			ran := false
			err := e.Run(context.Background(), Stage{Name: "a", Outputs: []string{out}, Run: func(ctx context.Context, _ logrus.FieldLogger) error {
				ran = true
				return os.WriteFile(out, []byte("whole"), 0o644)
			}})
			if err != nil || !ran {
				t.Fatalf("rerun after %v: ran=%v err=%v", sig, ran, err)
			}
			if !strings.Contains(logs.String(), "interrupted") {
				t.Errorf("log does not say the stage was interrupted:\n%s", logs)
			}
			if b, _ := os.ReadFile(out); string(b) != "whole" {
				t.Errorf("output = %q", b)
			}
		})
	}
}

func TestLockNamesHolder(t *testing.T) {
	state := t.TempDir()
	lock := filepath.Join(state, "lock")
	cmd := startHelper(t, "hold-lock", "STAGE_TEST_LOCK="+lock)
	e, _ := open(t, state, false)
	err := e.Run(context.Background(), Stage{Name: "x", Run: func(context.Context, logrus.FieldLogger) error {
		t.Error("stage ran while another process held the lock")
		return nil
	}})
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Fatalf("err = %v, want lock held by pid %d", err, cmd.Process.Pid)
	}
	if !strings.Contains(err.Error(), "pid ") {
		t.Errorf("message does not name the pid: %v", err)
	}
	// Once the holder is gone (even killed), the lock is free.
	cmd.Process.Kill()
	cmd.Wait()
	e2, _ := open(t, state, false)
	if err := e2.Lock(); err != nil {
		t.Errorf("lock after the holder died: %v", err)
	}
}

func TestDownstream(t *testing.T) {
	stages := []Stage{{Name: "a"}, {Name: "b", Deps: []string{"a"}}, {Name: "x"}, {Name: "c", Deps: []string{"b", "x"}}, {Name: "d", Deps: []string{"x"}}}
	for name, want := range map[string]string{"a": "a,b,c", "x": "x,c,d", "c": "c"} {
		got, err := Downstream(stages, name)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("Downstream(%s) = %v, %v; want %s", name, got, err, want)
		}
	}
}
