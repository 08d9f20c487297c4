package httpclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

var errRefused = errors.New("refused by the test")

// TestAllowSeesResolvedAddresses: the check runs on the dialled address, so
// a host name that resolves to a refused address is refused too.
func TestAllowSeesResolvedAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	var seen []netip.Addr
	c := NewClient(Options{Allow: func(a netip.Addr) error {
		seen = append(seen, a)
		if a.IsLoopback() {
			return errRefused
		}
		return nil
	}})
	for _, host := range []string{"127.0.0.1", "localhost"} {
		resp, err := c.Get(fmt.Sprintf("http://%s:%s/", host, port))
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, errRefused) {
			t.Errorf("GET via %s = %v, want the refusal", host, err)
		}
	}
	if len(seen) == 0 || !seen[0].IsLoopback() {
		t.Errorf("Allow saw %v", seen)
	}
	open := NewClient(Options{Allow: func(netip.Addr) error { return nil }})
	resp, err := open.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestStallError: a body that stops flowing fails with a StallError that
// names the server and the idle time.
func TestStallError(t *testing.T) {
	addr := testutil.StallingServer(t)
	c := NewClient(Options{Timeouts: Timeouts{Idle: 200 * time.Millisecond}})
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	var stall *StallError
	if !errors.As(err, &stall) || stall.Addr != addr || !strings.Contains(err.Error(), "no read progress for 200ms") {
		t.Errorf("read = %v, want a StallError", err)
	}
}

// TestConnectTimeout: a server that never answers the TCP handshake fails
// the request after Timeouts.Connect, with the dialler's timeout, not after
// the kernel's two minutes of SYN retries (the context only keeps a broken
// client from holding the test that long).
func TestConnectTimeout(t *testing.T) {
	addr := testutil.UnansweredAddr(t)
	c := NewClient(Options{Timeouts: Timeouts{Connect: 300 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET succeeded")
	}
	var ne net.Error
	if ctx.Err() != nil || !errors.As(err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), "dial tcp "+addr) {
		t.Errorf("GET = %v, want the dialler's timeout", err)
	}
}

func TestWithDefaults(t *testing.T) {
	got := Timeouts{Idle: time.Second}.WithDefaults()
	want := Timeouts{Connect: DefaultConnect, TLSHandshake: DefaultTLSHandshake, ResponseHeader: DefaultResponseHeader, Idle: time.Second}
	if got != want {
		t.Errorf("WithDefaults = %+v", got)
	}
}
