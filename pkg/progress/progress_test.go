package progress

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// syncBuf is a buffer the ticker goroutine writes while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// In plain mode the periodic lines go through Log when it is set (so they
// carry the time and the stage), else to Out.
func TestPlainLines(t *testing.T) {
	plain := false
	var logged, out syncBuf
	l := logrus.New()
	l.SetOutput(&logged)
	l.Formatter = &logrus.TextFormatter{DisableTimestamp: true}
	for _, tt := range []struct {
		name string
		opt  Options
		dst  *syncBuf
	}{
		{"log", Options{Out: &out, Terminal: &plain, Interval: time.Millisecond, Log: l.WithField("stage", "rfs_flists")}, &logged},
		{"out", Options{Out: &out, Terminal: &plain, Interval: time.Millisecond}, &out},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logged, out = syncBuf{}, syncBuf{}
			b := Start("pack", 100, Count, tt.opt)
			b.Add(40)
			b.Detail("3 blobs uploaded")
			for !strings.Contains(tt.dst.String(), "pack: 40 / 100 (40%), 3 blobs uploaded") {
				time.Sleep(time.Millisecond)
			}
			b.Finish()
			if tt.name == "log" && (!strings.Contains(logged.String(), "stage=rfs_flists") || out.String() != "") {
				t.Errorf("log: %q; out: %q", logged.String(), out.String())
			}
		})
	}
}

func TestNilBar(t *testing.T) {
	var b *Bar
	b.Add(1)
	b.Detail("x")
	b.Finish()
	if b.Done() != 0 || b.Status() != "" {
		t.Error("a nil bar counted")
	}
}

// TestSetTotal: a bar started with an unknown total shows a percentage once
// the total is set, in plain and in terminal mode.
func TestSetTotal(t *testing.T) {
	for _, tty := range []bool{false, true} {
		b := Start("pack", 0, Count, Options{Out: io.Discard, Terminal: &tty})
		b.Add(25)
		if got := b.Status(); got != "25" {
			t.Errorf("terminal=%v: before SetTotal: %q", tty, got)
		}
		b.SetTotal(100)
		if got := b.Status(); got != "25 / 100 (25%)" {
			t.Errorf("terminal=%v: after SetTotal: %q", tty, got)
		}
		b.Finish()
	}
	var nilBar *Bar
	nilBar.SetTotal(1) // a nil bar does nothing
}
