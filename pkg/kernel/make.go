package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
)

// tailLines is how much of a failed step's log goes into the error.
const tailLines = 40

// runLogged runs a command in dir with its output in logDir/step.log and
// returns the CPU time it and its children used (the figure that stays
// meaningful on a shared machine). On failure the error names the log and
// carries its last lines.
func runLogged(ctx context.Context, dir, logDir, step string, env []string, name string, args ...string) (time.Duration, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return 0, fmt.Errorf("%s: %w", step, err)
	}
	logPath := filepath.Join(logDir, step+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", step, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "# %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = f
	cmd.Stderr = f
	// make's children must die with it on cancellation.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	runErr := cmd.Run()
	if err := f.Close(); err != nil && runErr == nil {
		return 0, fmt.Errorf("%s: write %s: %w", step, logPath, err)
	}
	if runErr != nil {
		return 0, fmt.Errorf("%s failed (full log %s): %w\n%s", step, logPath, runErr, fsutil.FileLastLines(logPath, tailLines))
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
