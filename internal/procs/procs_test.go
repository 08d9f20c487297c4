package procs

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// TestForBlockingIO runs in a child process: GOMAXPROCS is process-wide.
func TestForBlockingIO(t *testing.T) {
	if os.Getenv("PROCS_CHILD") != "" {
		ForBlockingIO()
		fmt.Println(runtime.GOMAXPROCS(0), CPUs())
		return
	}
	tests := []struct {
		name, env string
		ok        func(procs, cpus int) bool
	}{
		{"two Ps per CPU by default", "", func(p, c int) bool { return c >= 1 && p == 2*c }},
		{"the environment's choice wins", "3", func(p, c int) bool { return p == 3 && c == 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestForBlockingIO$")
			// exec keeps the last of duplicate variables.
			cmd.Env = append(os.Environ(), "PROCS_CHILD=1", "GOMAXPROCS="+tt.env)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			var procs, cpus int
			if _, err := fmt.Sscan(string(out), &procs, &cpus); err != nil {
				t.Fatalf("child printed %q: %v", out, err)
			}
			if !tt.ok(procs, cpus) {
				t.Errorf("GOMAXPROCS %d with %d CPUs", procs, cpus)
			}
		})
	}
}
