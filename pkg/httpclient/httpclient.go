// Package httpclient makes the HTTP transports of every network read of the
// build: downloads (pkg/download) and the HTTP and S3 blob stores
// (pkg/store). Every wait is bounded: the TCP connect, the TLS handshake,
// the response headers, and each single read or write on the connection, so
// a server that accepts and never answers, or sends headers and then
// stalls, fails the request instead of blocking the build. A transport can
// also refuse addresses: the check runs on the address actually dialled,
// after name resolution, so a host name cannot smuggle a refused address
// past it.
package httpclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Default timeouts. Connect and TLS handshake are generous for a slow
// mirror; Idle is the longest a healthy server goes without sending a
// byte.
const (
	DefaultConnect        = 30 * time.Second
	DefaultTLSHandshake   = 30 * time.Second
	DefaultResponseHeader = 60 * time.Second
	DefaultIdle           = 60 * time.Second
)

// Timeouts bound the waits of a transport. Zero fields take the defaults.
// There is no limit on a whole request: a large download that keeps
// flowing is never cut.
type Timeouts struct {
	// Connect bounds one TCP connect.
	Connect time.Duration
	// TLSHandshake bounds the TLS handshake.
	TLSHandshake time.Duration
	// ResponseHeader bounds the wait for the response headers once the
	// request is written.
	ResponseHeader time.Duration
	// Idle bounds every single read and write on a connection: a body that
	// stops flowing for this long fails.
	Idle time.Duration
}

// WithDefaults returns t with its zero fields set to the defaults.
func (t Timeouts) WithDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, DefaultConnect)
	def(&t.TLSHandshake, DefaultTLSHandshake)
	def(&t.ResponseHeader, DefaultResponseHeader)
	def(&t.Idle, DefaultIdle)
	return t
}

// Options configure a transport.
type Options struct {
	// Timeouts bound every wait; zero fields take the defaults.
	Timeouts Timeouts
	// Allow, when set, is asked about every address before it is dialled,
	// after name resolution; an error refuses the connection. A transport
	// with Allow set ignores HTTP(S)_PROXY: a proxy would dial addresses
	// the check never sees.
	Allow func(netip.Addr) error
	// MaxIdleConnsPerHost overrides net/http's default of 2 (parallel
	// uploads keep more connections).
	MaxIdleConnsPerHost int
}

// NewTransport returns an *http.Transport with the bounded waits of opt.
func NewTransport(opt Options) *http.Transport {
	t := opt.Timeouts.WithDefaults()
	dialer := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	if opt.Allow != nil {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("refused to dial %s: %w", address, err)
			}
			return opt.Allow(ap.Addr().Unmap())
		}
	}
	proxy := http.ProxyFromEnvironment
	if opt.Allow != nil {
		proxy = nil
	}
	return &http.Transport{
		Proxy: proxy,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: c, idle: t.Idle}, nil
		},
		ForceAttemptHTTP2: true,
		// What is fetched is checked against hashes of the stored bytes
		// (sha256, blob ids): no transparent gzip decoding.
		DisableCompression:    true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   opt.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   t.TLSHandshake,
		ResponseHeaderTimeout: t.ResponseHeader,
		ExpectContinueTimeout: time.Second,
	}
}

// NewClient returns a client over NewTransport(opt). It follows redirects
// as http.DefaultClient does (each new connection is checked by Allow).
func NewClient(opt Options) *http.Client {
	return &http.Client{Transport: NewTransport(opt)}
}

// idleConn gives every Read and Write its own deadline, so a connection
// that stops moving fails after idle whatever the request's stage.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	return n, c.stalled("read", err)
}

func (c *idleConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	return n, c.stalled("write", err)
}

func (c *idleConn) stalled(op string, err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return &StallError{Op: op, After: c.idle, Addr: c.RemoteAddr().String(), Err: err}
	}
	return err
}

// StallError is a connection on which nothing moved for the idle timeout.
type StallError struct {
	Op    string // "read" or "write"
	After time.Duration
	Addr  string
	Err   error
}

func (e *StallError) Error() string {
	return fmt.Sprintf("connection to %s stalled: no %s progress for %s", e.Addr, e.Op, e.After)
}

// Unwrap returns the deadline error.
func (e *StallError) Unwrap() error { return e.Err }

// Timeout reports true: net/http and callers treat it as a timeout.
func (e *StallError) Timeout() bool { return true }

// Temporary reports true (net.Error).
func (e *StallError) Temporary() bool { return true }
