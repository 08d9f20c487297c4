// Package redistest runs Debian's redis-server on the loopback interface
// for tests: the shared storage of the compile cache (ccache's redis://).
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// startTimeout only keeps a broken server from hanging the caller forever.
const startTimeout = 30 * time.Second

// Server is a running (or stopped) redis-server.
type Server struct {
	Addr string // 127.0.0.1:PORT, kept across Restart

	bin, dir string
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan error
}

// Start starts redis-server (bin, or from PATH when "") on a free loopback
// port, keeping nothing on disk, and waits until it answers PING.
func Start(ctx context.Context, bin, dir string) (*Server, error) {
	if bin == "" {
		bin = "redis-server"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start redis-server: find a free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Addr: addr, bin: bin, dir: dir}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Restart starts a stopped server again on the same address, empty.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		return fmt.Errorf("restart redis-server on %s: still running", s.Addr)
	}
	return s.start(ctx)
}

func (s *Server) start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command(s.bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		if err := s.Ping(ctx); err == nil {
			return nil
		}
		select {
		case err := <-done:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("redis-server on %s exited before answering: %v", s.Addr, err)
		case <-ctx.Done():
			s.Stop()
			return fmt.Errorf("redis-server on %s did not answer: %w", s.Addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StartT starts a server for a test and stops it at cleanup; it skips (fails
// under CI) when redis-server is missing.
func StartT(t testing.TB) *Server {
	t.Helper()
	testutil.Slow(t)
	bin := testutil.RequireTool(t, "redis-server")
	s, err := Start(context.Background(), bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Ping sends PING and expects PONG.
func (s *Server) Ping(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis answered %q", line)
	}
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after five seconds).
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	return nil
}
