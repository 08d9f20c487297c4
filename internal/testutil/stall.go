package testutil

import (
	"net"
	"sync"
	"testing"
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
