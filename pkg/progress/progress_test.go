package progress

import (
	"io"
	"testing"
)

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
