package logging

import (
	"bytes"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestLineFormatter(t *testing.T) {
	at := time.Date(2025, 1, 2, 12, 1, 7, 0, time.Local)
	tests := []struct {
		name  string
		level logrus.Level
		data  logrus.Fields
		msg   string
		want  string
	}{
		{"plain", logrus.InfoLevel, nil, "build complete", "12:01:07 INFO  build complete\n"},
		{"stage", logrus.InfoLevel, logrus.Fields{StageField: "kernel_modules"}, "running (never run)",
			"12:01:07 INFO  [kernel_modules] running (never run)\n"},
		{"stage and fields, sorted", logrus.WarnLevel, logrus.Fields{"url": "u", StageField: "alpine_extract", "attempt": 2}, "retrying",
			"12:01:07 WARNING [alpine_extract] retrying attempt=2 url=u\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &logrus.Entry{Time: at, Level: tt.level, Data: tt.data, Message: tt.msg}
			b, err := LineFormatter{}.Format(e)
			if err != nil || string(b) != tt.want {
				t.Errorf("got %q, %v; want %q", b, err, tt.want)
			}
		})
	}
}

// A stage logger handed down to a package keeps the stage on every line the
// package prints, also after the package adds its own fields.
func TestStageSurvivesPackageFields(t *testing.T) {
	var out bytes.Buffer
	l := logrus.New()
	l.SetOutput(&out)
	l.Formatter = &RedactingFormatter{Inner: LineFormatter{}, Secrets: []string{"s3cr3t-key"}}
	var stageLog logrus.FieldLogger = l.WithField(StageField, "components_build")
	pkgLog := OrDiscard(stageLog).WithField("component", "zinit")
	pkgLog.Warn("kept local changes; token s3cr3t-key")
	got := out.String()
	want := "WARNING [components_build] kept local changes; token *** component=zinit\n"
	if len(got) < 9 || got[9:] != want {
		t.Errorf("got %q, want time + %q", got, want)
	}
}

func TestOrDiscard(t *testing.T) {
	// nil is silent, and usable with fields at every level.
	OrDiscard(nil).WithField("k", "v").Warnf("nothing %d", 1)
	OrDiscard(nil).Debug("nothing")
	l := logrus.New()
	if OrDiscard(l) != logrus.FieldLogger(l) {
		t.Error("OrDiscard replaced a logger it was given")
	}
}
