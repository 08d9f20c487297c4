package testutil

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Runit runs the project's runit.sh (at path runit) with args plus a
// console log of its own, waits at most wait, and returns its exit code and
// the console. An exit code is a result, not a failure; runit.sh that cannot
// run, or a VM it leaves behind, fails t.
func Runit(t testing.TB, runit string, wait time.Duration, args ...string) (int, string) {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "console.log")
	args = append(args, "--log", logFile)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, runit, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run() // stdout is the console, also in logFile
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("runit.sh: %v", err)
	}
	console, _ := os.ReadFile(logFile)
	t.Logf("runit.sh %s: exit %d after %s\n%s", strings.Join(args, " "), code, time.Since(start).Round(time.Second), stderr.String())
	requireNoVM(t, logFile)
	return code, string(console)
}

// requireNoVM fails when a QEMU started for logFile still runs: runit.sh
// must never leave one behind.
func requireNoVM(t testing.TB, logFile string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(logFile)) {
			t.Errorf("a VM is still running after runit.sh returned: %s", strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}
