package cache

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
)

// Status is what `mage cache:status` prints: where the artifacts go, this
// work tree's hits and misses, what the store holds, and the compile
// cache's counters.
type Status struct {
	Where string
	Push  bool
	Local Stats
	// Store is the store's contents, or StoreErr why it could not be listed.
	Store    Contents
	StoreErr error
	// Compile describes the compile cache ("" when off), with its counters.
	Compile      string
	CompileLines []string
}

// Status gathers the status of the cache; stateDir holds the work tree's
// statistics.
func (c *Cache) Status(ctx context.Context, stateDir string) (Status, error) {
	st := Status{Where: c.where, Push: c.push}
	var err error
	if st.Local, err = ReadStats(stateDir); err != nil {
		return st, err
	}
	st.Store, st.StoreErr = c.Contents(ctx)
	return st, nil
}

// Write prints the status as aligned lines.
func (s Status) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	push := "restore and publish"
	if !s.Push {
		push = "restore only (CACHE_PUSH=false)"
	}
	fmt.Fprintf(tw, "artifact store\t%s, %s\n", s.Where, push)
	l := s.Local
	fmt.Fprintf(tw, "this work tree\t%s, %s; %s restored, %s published\n", count(l.Hits, "hit", "hits"), count(l.Misses, "miss", "misses"),
		humanize.IBytes(uint64(l.Restored)), humanize.IBytes(uint64(l.Published)))
	ids := make([]string, 0, len(l.Last))
	for id := range l.Last {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := l.Last[id]
		fmt.Fprintf(tw, "  %s\t%s %s, %s, %s, %.1f s\n", id, r.Outcome, r.Key[:12], r.When.Local().Format("2006-01-02 15:04"),
			humanize.IBytes(uint64(r.Bytes)), r.Seconds)
	}
	if s.StoreErr != nil {
		fmt.Fprintf(tw, "store contents\tunavailable: %v\n", s.StoreErr)
	} else {
		var stages []string
		for st, n := range s.Store.Artifacts {
			stages = append(stages, fmt.Sprintf("%s %d", st, n))
		}
		sort.Strings(stages)
		fmt.Fprintf(tw, "store contents\t%s in %s (%s)%s\n", count(s.Store.Data, "data object", "data objects"),
			humanize.IBytes(uint64(s.Store.Bytes)), strings.Join(stages, ", "), span(s.Store))
	}
	if s.Compile != "" {
		fmt.Fprintf(tw, "compile cache\t%s\n", s.Compile)
		for _, line := range s.CompileLines {
			fmt.Fprintf(tw, "  \t%s\n", line)
		}
	}
	return tw.Flush()
}

func span(c Contents) string {
	if c.Oldest.IsZero() {
		return ""
	}
	return fmt.Sprintf("; artifacts used or published from %s to %s", c.Oldest.Local().Format(time.DateOnly), c.Newest.Local().Format(time.DateOnly))
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
