// Package versitygw runs versitygw, a real S3 server (Apache-2.0), on the
// loopback interface for benchmarks and, through internal/s3test, for tests.
// Every subdirectory of the server's data directory is a bucket and objects
// are plain files below it, so callers can also count what was uploaded by
// listing that directory. It does not import testing: mage links it.
package versitygw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Region is the region versitygw answers for by default.
const Region = "us-east-1"

// startTimeout only keeps a broken server from hanging the caller forever.
const startTimeout = 60 * time.Second

// Options configure a server. The zero value picks everything.
type Options struct {
	Bin       string    // versitygw executable; default: PATH, then ~/go/bin/versitygw
	Dir       string    // data directory; default: a new temporary directory (removed by Stop)
	AccessKey string    // root access key; default "zosbuilder-test"
	SecretKey string    // root secret; default "zosbuilder-test-secret-0123456789"
	Log       io.Writer // server output; default discarded (its end is quoted if it fails to start)
	// KeepAlive keeps client connections open between requests, as
	// production S3 servers do; versitygw closes each one by default, which
	// makes every request of a benchmark pay a new connection.
	KeepAlive bool
	// Metadata keeps object metadata in extended attributes. Multipart
	// uploads need it (the parts' ETags live there); the default
	// (--nometa) also works where the data directory has no user xattrs.
	Metadata bool
}

// Server is a running (or stopped) versitygw.
type Server struct {
	AccessKey, SecretKey string
	Dir                  string // data directory: <Dir>/<bucket>/<object>
	Addr                 string // 127.0.0.1:PORT, kept across Restart

	bin       string
	keepAlive bool
	meta      bool
	log       io.Writer
	tail      *tail // the end of the server's output, for errors
	ownDir    bool
	cmd       *exec.Cmd
	done      chan error
}

// Bin returns the versitygw executable: from PATH, else ~/go/bin/versitygw
// (where `go install` puts it), or "" when neither exists.
func Bin() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Start starts versitygw on 127.0.0.1 on a free port and waits until it
// answers HTTP requests.
func Start(ctx context.Context, opt Options) (*Server, error) {
	s := &Server{AccessKey: opt.AccessKey, SecretKey: opt.SecretKey, Dir: opt.Dir, bin: opt.Bin, log: opt.Log, keepAlive: opt.KeepAlive, meta: opt.Metadata}
	if s.bin == "" {
		s.bin = Bin()
	}
	if s.bin == "" {
		return nil, errors.New("versitygw not found (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	if s.AccessKey == "" {
		s.AccessKey = "zosbuilder-test"
	}
	if s.SecretKey == "" {
		s.SecretKey = "zosbuilder-test-secret-0123456789"
	}
	if s.Dir != "" {
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("start versitygw: %w", err)
		}
	}
	if s.Dir == "" {
		d, err := os.MkdirTemp("", "s3test-")
		if err != nil {
			return nil, fmt.Errorf("start versitygw: %w", err)
		}
		s.Dir, s.ownDir = d, true
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start versitygw: find a free port: %w", err)
	}
	s.Addr = l.Addr().String()
	l.Close()
	if err := s.start(ctx); err != nil {
		s.cleanup()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	args := []string{"--port", s.Addr, "--quiet"}
	if s.keepAlive {
		args = append(args, "--keep-alive")
	}
	args = append(args, "posix")
	if !s.meta {
		args = append(args, "--nometa")
	}
	cmd := exec.Command(s.bin, append(args, s.Dir)...)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	s.tail = &tail{}
	out := io.Writer(s.tail)
	if s.log != nil {
		out = io.MultiWriter(s.log, s.tail)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: a ^C meant for `go test` does not hit the server
	// first, so Stop still finds it running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		// Any HTTP answer (an anonymous request gets 403) means it is serving.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint()+"/", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("versitygw on %s exited before answering: %w: %s", s.Addr, err, s.tail)
		case <-ctx.Done():
			return fmt.Errorf("versitygw on %s did not answer: %w", s.Addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the server: SIGTERM, then SIGKILL after a second (a graceful
// shutdown waits for requests a cancelled client abandoned). The data
// directory is kept; a directory Start created is removed by Close.
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	return nil
}

// Restart starts a stopped server again on the same address and data.
func (s *Server) Restart(ctx context.Context) error {
	if s.cmd != nil {
		return fmt.Errorf("restart versitygw on %s: still running", s.Addr)
	}
	return s.start(ctx)
}

// Close stops the server and removes a data directory that Start created.
func (s *Server) Close() error {
	err := s.Stop()
	s.cleanup()
	return err
}

func (s *Server) cleanup() {
	if s.ownDir {
		_ = os.RemoveAll(s.Dir)
	}
}

// Endpoint is the server's http:// URL.
func (s *Server) Endpoint() string { return "http://" + s.Addr }

// CreateBucket creates a bucket through the S3 API.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	c, err := minio.New(s.Addr, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// URL is an s3:// store URL for bucket (and an optional key prefix) with the
// server's root credentials.
func (s *Server) URL(bucket, prefix string) string {
	return s.URLWith(s.AccessKey, s.SecretKey, bucket, prefix)
}

// URLWith is URL with the given credentials (for wrong-secret tests).
func (s *Server) URLWith(access, secret, bucket, prefix string) string {
	path := "/" + bucket
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		path += "/" + prefix
	}
	u := url.URL{Scheme: "s3", User: url.UserPassword(access, secret), Host: s.Addr, Path: path,
		RawQuery: "region=" + Region}
	return u.String()
}

// Objects counts the regular files below <Dir>/<bucket>[/<prefix>], i.e. the
// objects the server holds there.
func (s *Server) Objects(bucket, prefix string) (int, error) {
	n := 0
	root := filepath.Join(s.Dir, bucket, filepath.FromSlash(prefix))
	err := filepath.WalkDir(root, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count objects in %s: %w", root, err)
	}
	return n, nil
}

// tail keeps the last bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 2048

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = t.buf[len(t.buf)-tailSize:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
