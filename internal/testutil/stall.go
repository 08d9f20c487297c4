package testutil

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// SilentServer listens on loopback, accepts every connection and never
// sends a byte, until the test ends. It returns host:port.
func SilentServer(t testing.TB) string {
	t.Helper()
	return serve(t, func(net.Conn) {})
}

// StallingServer answers every request with response headers announcing
// 1 MiB, sends 10 bytes of body and then stalls until the test ends. It
// returns host:port.
func StallingServer(t testing.TB) string {
	t.Helper()
	return serve(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		_, _ = c.Read(buf) // the request (its first packet is enough)
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\nContent-Type: application/octet-stream\r\n\r\n0123456789"))
	})
}

// serve accepts connections on loopback and runs greet on each; the
// connections stay open (and silent after greet) until the test ends.
func serve(t testing.TB, greet func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				greet(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// UnansweredAddr returns a loopback host:port whose TCP connects neither
// succeed nor fail: a listener that never accepts, with its accept queue
// filled, so Linux drops every further SYN (net.ipv4.tcp_abort_on_overflow
// is 0 by default) and the client waits as for a host that is down.
func UnansweredAddr(t testing.TB) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	// A backlog of 0 holds one connection; fill it until a connect hangs.
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("%s: connects still succeed with a full accept queue", addr)
	return ""
}
