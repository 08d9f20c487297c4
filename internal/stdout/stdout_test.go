package stdout

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
)

const helperEnv = "STDOUT_TEST_HELPER"

// The helper process prints far more than a pipe holds; with
// helperEnv=print it goes through Print, with helperEnv=raw it writes
// directly (Go's default: death by SIGPIPE).
func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "print":
		err := Print(func(w io.Writer) error {
			for i := 0; i < 1_000_000; i++ {
				if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(3)
		}
		os.Exit(0)
	case "raw":
		for i := 0; i < 1_000_000; i++ {
			fmt.Fprintf(os.Stdout, "line %d\n", i)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// readOneLine runs the helper, reads one line of its output and closes the
// pipe, as `| head -n 1` does, then returns how the helper exited.
func readOneLine(t *testing.T, mode string) error {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "line 0\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	out.Close()
	return cmd.Wait()
}

func TestPrintToClosedPipeIsNotAnError(t *testing.T) {
	if err := readOneLine(t, "print"); err != nil {
		t.Errorf("Print to a pipe closed by its reader: %v, want exit 0", err)
	}
	// The control: without Print the same writes kill the process, which
	// is what `mage rfs:tree FL | head` reported as exit status 255.
	var exit *exec.ExitError
	if err := readOneLine(t, "raw"); !errors.As(err, &exit) || exit.Success() {
		t.Errorf("raw writes to a closed pipe: %v, want death by SIGPIPE", err)
	}
}

func TestPrintReturnsOtherErrors(t *testing.T) {
	want := errors.New("corrupt flist")
	if err := Print(func(io.Writer) error { return want }); !errors.Is(err, want) {
		t.Errorf("Print = %v, want %v", err, want)
	}
}
