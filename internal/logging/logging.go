// Package logging is how the project's packages get a logger and how the
// build's log lines look. A package takes an optional logger in its options
// (Log logrus.FieldLogger) and calls OrDiscard on it: nil means silent. The
// build gives each stage a logger with the stage's name in StageField, and
// LineFormatter prints that name on every line, so the lines of stages that
// run in parallel can be told apart.
package logging

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/redact"
)

// StageField is the entry field that names the build stage a line belongs
// to; LineFormatter prints it in brackets after the level.
const StageField = "stage"

var discard = func() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	// Above every level: entries are dropped before they are formatted.
	l.SetLevel(logrus.PanicLevel)
	return l
}()

// OrDiscard returns l, or a logger that prints nothing when l is nil. It is
// the one way a package turns its optional Log option into a logger.
func OrDiscard(l logrus.FieldLogger) logrus.FieldLogger {
	if l == nil {
		return discard
	}
	return l
}

// LineFormatter prints "15:04:05 INFO  [stage] message key=value": one short
// line a message, readable in a terminal and in CI logs alike. The stage
// part is there when the entry has a StageField.
type LineFormatter struct{}

// Format implements logrus.Formatter.
func (LineFormatter) Format(e *logrus.Entry) ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s ", e.Time.Format("15:04:05"), strings.ToUpper(e.Level.String()))
	if s, ok := e.Data[StageField]; ok {
		fmt.Fprintf(&b, "[%v] ", s)
	}
	b.WriteString(e.Message)
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		if k != StageField {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, e.Data[k])
	}
	b.WriteByte('\n')
	return []byte(b.String()), nil
}

// RedactingFormatter replaces known secret values (rfs.conf keys) in every
// line Inner formats: the packages never log them, and this makes sure of it.
type RedactingFormatter struct {
	Inner   logrus.Formatter
	Secrets []string
}

// Format implements logrus.Formatter.
func (f *RedactingFormatter) Format(e *logrus.Entry) ([]byte, error) {
	b, err := f.Inner.Format(e)
	if err != nil {
		return nil, err
	}
	return []byte(redact.Secrets(string(b), f.Secrets)), nil
}
