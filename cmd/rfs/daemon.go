package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// readyEnv tells a daemon child which descriptor leads back to its parent:
// the child writes "ok" there once the mount is live, or why it failed.
const readyEnv = "RFS_DAEMON_READY_FD"

// readyFD is the descriptor number of the pipe (the first ExtraFiles).
const readyFD = 3

// daemonWait is how long the parent waits for the mount to come up, as rfs
// does; then it stops the child and fails.
const daemonWait = 5 * time.Second

const readyOK = "ok\n"

func isDaemonChild() bool { return os.Getenv(readyEnv) == strconv.Itoa(readyFD) }

// startDaemon starts this program again as a daemon in its own session,
// with its output going to the log file (or nowhere), and returns once the
// daemon says the mount is live. A daemon that fails says why (returned
// here); one that does not answer within daemonWait is stopped.
func startDaemon(mo *mountOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	out, err := daemonOutput(mo.logFile)
	if err != nil {
		return err
	}
	defer out.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	defer r.Close()
	args := []string{"mount", "-d", "-m", mo.meta, "-c", mo.cache,
		"--cache-size", strconv.FormatInt(mo.cacheSize, 10)}
	for range mo.debug {
		args = append(args, "--debug")
	}
	cmd := exec.Command(exe, append(args, mo.target)...)
	cmd.Env = append(os.Environ(), readyEnv+"="+strconv.Itoa(readyFD))
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}

	if err := r.SetReadDeadline(time.Now().Add(daemonWait)); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	msg, err := io.ReadAll(io.LimitReader(r, 64<<10))
	switch {
	case err == nil && string(msg) == readyOK:
		return cmd.Process.Release()
	case errors.Is(err, os.ErrDeadlineExceeded):
		stop(cmd)
		return fmt.Errorf("the mount of %s on %s did not come up within %s; stopped the daemon (pid %d)",
			mo.meta, mo.target, daemonWait, cmd.Process.Pid)
	}
	werr := cmd.Wait()
	if text := strings.TrimSpace(string(msg)); text != "" {
		return errors.New(text)
	}
	where := ""
	if mo.logFile != "" {
		where = "; see " + mo.logFile
	}
	return fmt.Errorf("the daemon exited before mounting (%v)%s", werr, where)
}

// daemonOutput is where the daemon's stdout and stderr go.
func daemonOutput(logFile string) (*os.File, error) {
	if logFile == "" {
		return os.Open(os.DevNull)
	}
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// stop ends a daemon that did not answer: SIGTERM lets it unmount if it got
// that far; SIGKILL follows if it does not exit.
func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(2 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// reportReady tells the parent how the mount went (it exits with this
// answer) and closes the pipe; it returns mountErr, or the error of telling.
func reportReady(mountErr error) error {
	f := os.NewFile(readyFD, "ready")
	os.Unsetenv(readyEnv)
	if f == nil {
		return errors.Join(mountErr, errors.New("daemon: no ready descriptor"))
	}
	defer f.Close()
	msg := readyOK
	if mountErr != nil {
		msg = mountErr.Error() + "\n"
	}
	if _, err := f.WriteString(msg); err != nil && mountErr == nil {
		return fmt.Errorf("daemon: tell the parent: %w", err)
	}
	return mountErr
}
