package stage

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// State is what Status reports for a stage.
type State string

// States of a stage.
const (
	Done   State = "done"
	Stale  State = "stale"
	Never  State = "never run"
	Failed State = "failed"
	// Cancelled is a run stopped because another stage failed first or
	// the build was interrupted.
	Cancelled State = "cancelled"
	Running   State = "running"
)

// Row is one line of the status table.
type Row struct {
	Name  string
	State State
	When  time.Time // start of the last recorded attempt
	Took  time.Duration
	Why   string // why the stage would run next time
	// Cache is what the artifact cache did in the recorded run ("hit",
	// "1 hit, 2 misses"), or "-".
	Cache string
}

// Status reports every stage without running anything. stages must be in
// dependency order, so a stage's upstream state is known when it is reached.
func (e *Engine) Status(stages []Stage) ([]Row, error) {
	var rows []Row
	state := map[string]State{}
	for _, s := range stages {
		r := Row{Name: s.Name, Cache: "-"}
		cur, err := e.inputs(s)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		done, derr := readMarker(markerPath(e.opt.Dir, s.Name))
		failed, ferr := readMarker(failedPath(e.opt.Dir, s.Name))
		running, rerr := readMarker(runningPath(e.opt.Dir, s.Name))
		switch {
		case rerr == nil:
			r.State, r.When, r.Why = Running, running.Started, "running now, or interrupted"
		case ferr == nil && (derr != nil || failed.Started.After(done.Started)):
			r.State, r.When, r.Took, r.Why = Failed, failed.Started, time.Duration(failed.DurationMS)*time.Millisecond, firstLine(failed.Error)
			if failed.Cancelled {
				r.State = Cancelled
			}
		case derr != nil:
			r.State = Never
		default:
			r.When, r.Took = done.Started, time.Duration(done.DurationMS)*time.Millisecond
			r.Cache = done.Cache.Summary()
			r.State = Done
			if why := e.staleReason(s, cur); why != "" {
				r.State, r.Why = Stale, why
			}
			for _, d := range s.Deps {
				if r.State == Done && state[d] != Done {
					r.State, r.Why = Stale, "upstream "+d+" is "+string(state[d])
				}
			}
		}
		state[s.Name] = r.State
		rows = append(rows, r)
	}
	return rows, nil
}

// PrintStatus writes rows as an aligned table.
func PrintStatus(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tSTATE\tWHEN\tTOOK\tCACHE\tWHY")
	for _, r := range rows {
		when, took := "-", "-"
		if !r.When.IsZero() {
			when = r.When.Local().Format("2006-01-02 15:04:05")
		}
		if r.Took > 0 || r.State == Done {
			took = r.Took.Round(10 * time.Millisecond).String()
		}
		why := r.Why
		if why == "" {
			why = "-"
		}
		cache := r.Cache
		if cache == "" {
			cache = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.State, when, took, cache, why)
	}
	return tw.Flush()
}
