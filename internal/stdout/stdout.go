// Package stdout prints a target's listing to the process's standard
// output the way command-line tools do: a reader that stops early
// (`mage rfs:tree FL | head`) is not an error.
package stdout

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Print runs fn with os.Stdout. When the reading end of a pipe closes, the
// next write fails with EPIPE instead of killing the process with SIGPIPE
// (Go's default for standard output, which mage reports as exit status
// 255); fn sees that error, which ends a walk early, and Print returns nil:
// the reader has what it wanted. Any other error is returned as it is.
func Print(fn func(w io.Writer) error) error {
	return printTo(os.Stdout, fn)
}

func printTo(w io.Writer, fn func(w io.Writer) error) error {
	signal.Ignore(syscall.SIGPIPE)
	defer signal.Reset(syscall.SIGPIPE)
	err := fn(w)
	if errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}
