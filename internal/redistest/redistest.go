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
	Addr string // 127.0.0.1:PORT

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
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
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{Addr: addr, cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		if err := s.Ping(ctx); err == nil {
			return s, nil
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("redis-server on %s exited before answering: %v", addr, err)
		case <-ctx.Done():
			s.Stop()
			return nil, fmt.Errorf("redis-server on %s did not answer: %w", addr, ctx.Err())
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
