// Package progress reports the progress of long work (downloads, packing,
// compression): a live bar when the output is a terminal, and a plain line
// every few seconds when it is not (CI logs, pipes), so a long step never
// looks hung and never floods a log file.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/sirupsen/logrus"
	"golang.org/x/term"
)

// Unit says how the counter is printed.
type Unit int

const (
	// Bytes prints the counter as a byte size (12 MB / 140 MB).
	Bytes Unit = iota
	// Count prints the counter as a plain number of items.
	Count
)

// Options tune a Bar. The zero value writes to stderr, detects a terminal and
// prints a plain line every 10 s otherwise. It is the one progress setting
// every package takes (Progress *progress.Options; nil shows nothing).
type Options struct {
	Out      io.Writer     // default os.Stderr
	Terminal *bool         // force terminal (true) or plain (false) mode; nil detects
	Interval time.Duration // plain mode: time between lines; default 10 s
	// Log, when set, receives the plain-mode lines instead of Out, so they
	// carry the time and the build stage like every other log line.
	Log logrus.FieldLogger
}

// Bar is a progress counter. All methods are safe for concurrent use; a nil
// *Bar is valid and does nothing, so callers can make progress optional.
type Bar struct {
	desc  string
	total atomic.Int64
	unit  Unit
	out   io.Writer
	log   logrus.FieldLogger

	done   atomic.Int64
	mu     sync.Mutex
	detail string

	bar  *progressbar.ProgressBar // terminal mode
	stop chan struct{}            // plain mode ticker
	wg   sync.WaitGroup
	once sync.Once
}

// Start begins reporting work named desc. total <= 0 means unknown.
func Start(desc string, total int64, unit Unit, opt Options) *Bar {
	if opt.Out == nil {
		opt.Out = os.Stderr
	}
	if opt.Interval <= 0 {
		opt.Interval = 10 * time.Second
	}
	tty := isTerminal(opt.Out)
	if opt.Terminal != nil {
		tty = *opt.Terminal
	}
	b := &Bar{desc: desc, unit: unit, out: opt.Out, log: opt.Log}
	b.total.Store(total)
	if tty {
		max := total
		if max <= 0 {
			max = -1
		}
		b.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(opt.Out),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(unit == Bytes),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionUseIECUnits(false),
		)
		return b
	}
	b.stop = make(chan struct{})
	b.wg.Add(1)
	go b.tick(opt.Interval)
	return b
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (b *Bar) tick(every time.Duration) {
	defer b.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			if b.log != nil {
				b.log.Infof("%s: %s", b.desc, b.Status())
			} else {
				fmt.Fprintf(b.out, "%s: %s\n", b.desc, b.Status())
			}
		}
	}
}

// SetTotal sets the total once it is known, for work that starts before
// its size is (a pack reads files while the walk is still finding them).
func (b *Bar) SetTotal(total int64) {
	if b == nil {
		return
	}
	b.total.Store(total)
	if b.bar != nil {
		if total <= 0 {
			total = -1 // unknown
		}
		b.bar.ChangeMax64(total)
	}
}

// Add records n more units of work done.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.done.Add(n)
	if b.bar != nil {
		_ = b.bar.Add64(n)
	}
}

// Detail sets a short free-form suffix, e.g. "120 blobs uploaded, 30 skipped".
func (b *Bar) Detail(s string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.detail = s
	b.mu.Unlock()
	if b.bar != nil {
		b.bar.Describe(b.desc + " " + s)
	}
}

// Status is the counter as text: "12 MB / 140 MB (8%)" or "1200 files".
func (b *Bar) Status() string {
	if b == nil {
		return ""
	}
	done := b.done.Load()
	s := b.format(done)
	if total := b.total.Load(); total > 0 {
		s = fmt.Sprintf("%s / %s (%d%%)", s, b.format(total), done*100/total)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.detail != "" {
		s += ", " + b.detail
	}
	return s
}

func (b *Bar) format(n int64) string {
	if b.unit == Bytes {
		return humanize.Bytes(uint64(max(n, 0)))
	}
	return fmt.Sprintf("%d", n)
}

// Done returns the work counted so far.
func (b *Bar) Done() int64 {
	if b == nil {
		return 0
	}
	return b.done.Load()
}

// Finish stops reporting. It is idempotent.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.once.Do(func() {
		if b.bar != nil {
			_ = b.bar.Finish()
			return
		}
		close(b.stop)
		b.wg.Wait()
	})
}

// Writer returns an io.Writer that counts what passes through it, for
// io.Copy(io.MultiWriter(dst, bar.Writer()), src).
func (b *Bar) Writer() io.Writer { return counter{b} }

type counter struct{ b *Bar }

func (c counter) Write(p []byte) (int, error) {
	c.b.Add(int64(len(p)))
	return len(p), nil
}
