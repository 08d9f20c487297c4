package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/pkg/progress"
)

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newFetcher(t *testing.T) *Fetcher {
	t.Helper()
	return New(Options{CacheDir: t.TempDir(), Backoff: time.Millisecond, Progress: &progress.Options{Out: io.Discard}})
}

// serve answers with body through http.ServeContent (Range, If-Range,
// conditional requests) and counts requests.
func serve(t *testing.T, body []byte, hits *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "f", time.Unix(1700000000, 0), bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// regularFiles lists the regular files below dir: after a failed download
// there must be none that could be mistaken for a complete one.
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFilePinnedWarmCacheMakesNoRequest(t *testing.T) {
	body := payload(100_000)
	var hits atomic.Int32
	srv := serve(t, body, &hits)
	f := newFetcher(t)
	ctx := context.Background()

	p1, err := f.File(ctx, srv.URL+"/dir/alpine.tar.gz", sum(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatal("downloaded content differs")
	}
	if filepath.Base(p1) != "alpine.tar.gz" {
		t.Errorf("cache file %s does not keep the URL's base name", p1)
	}
	p2, err := f.File(ctx, srv.URL+"/dir/alpine.tar.gz", strings.ToUpper(sum(body)))
	if err != nil {
		t.Fatal(err)
	}
	if p2 != p1 {
		t.Errorf("second call returned %s, want cached %s", p2, p1)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1 (warm cache must not touch the network)", n)
	}
}

func TestFileCorruptedCacheIsFetchedAgain(t *testing.T) {
	body := payload(5000)
	var hits atomic.Int32
	srv := serve(t, body, &hits)
	f := newFetcher(t)
	p, err := f.File(context.Background(), srv.URL+"/x", sum(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.File(context.Background(), srv.URL+"/x", sum(body)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
		t.Error("corrupted cached file was not replaced")
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}

func TestFileChecksumMismatch(t *testing.T) {
	body := payload(4096)
	var hits atomic.Int32
	srv := serve(t, body, &hits)
	f := newFetcher(t)
	wrong := sum([]byte("something else"))
	u := srv.URL + "/minirootfs.tar.gz"
	_, err := f.File(context.Background(), u, wrong)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	for _, want := range []string{u, wrong, sum(body)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if left := regularFiles(t, f.opt.CacheDir); len(left) != 0 {
		t.Errorf("files left after a checksum failure: %v", left)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("checksum failure was retried: %d requests", n)
	}
}

// dropOnce cuts the connection in the middle of the first response, as a
// flaky mirror or proxy does, and serves properly afterwards.
func dropOnce(t *testing.T, body []byte, drops int32, ranges *[]string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		*ranges = append(*ranges, r.Header.Get("Range"))
		if n <= drops {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: \"v1\"\r\n\r\n", len(body))
			buf.Write(body[:len(body)/3])
			buf.Flush()
			conn.Close()
			return
		}
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "f", time.Unix(1700000000, 0), bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestFileRetriesAndResumesAfterDroppedConnection(t *testing.T) {
	body := payload(300_000)
	var ranges []string
	srv, hits := dropOnce(t, body, 1, &ranges)
	f := newFetcher(t)
	p, err := f.File(context.Background(), srv.URL+"/big.tar.xz", sum(body))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
		t.Fatal("content differs after resume")
	}
	if hits.Load() != 2 {
		t.Fatalf("requests = %d, want 2", hits.Load())
	}
	if want := fmt.Sprintf("bytes=%d-", len(body)/3); ranges[1] != want {
		t.Errorf("retry asked Range %q, want %q (resume)", ranges[1], want)
	}
	if left := regularFiles(t, f.opt.CacheDir); len(left) != 1 || left[0] != p {
		t.Errorf("cache holds %v, want only %s", left, p)
	}
}

func TestFileGivesUpAndLeavesNoPartialFile(t *testing.T) {
	body := payload(100_000)
	var ranges []string
	srv, hits := dropOnce(t, body, 100, &ranges)
	f := New(Options{CacheDir: t.TempDir(), Backoff: time.Millisecond, Retries: 2})
	_, err := f.File(context.Background(), srv.URL+"/big", sum(body))
	if err == nil {
		t.Fatal("download from a server that always drops succeeded")
	}
	if !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("error %q does not say how often it tried", err)
	}
	if hits.Load() != 3 {
		t.Errorf("requests = %d, want 3", hits.Load())
	}
	if left := regularFiles(t, f.opt.CacheDir); len(left) != 0 {
		t.Errorf("files left after a failed download: %v", left)
	}
}

func TestStatusRetries(t *testing.T) {
	tests := []struct {
		name     string
		codes    []int // answers before a 200
		wantErr  int   // 0: success
		wantHits int32
	}{
		{"404 is final", []int{404}, 404, 1},
		{"403 is final", []int{403}, 403, 1},
		{"503 is retried", []int{503, 502}, 0, 3},
		{"429 is retried", []int{429}, 0, 2},
		{"500 until retries run out", []int{500, 500, 500, 500, 500}, 500, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(hits.Add(1))
				if n <= len(tt.codes) {
					http.Error(w, "no", tt.codes[n-1])
					return
				}
				io.WriteString(w, "ok")
			}))
			defer srv.Close()
			f := New(Options{Backoff: time.Millisecond})
			b, err := f.Bytes(context.Background(), srv.URL+"/index")
			var se *StatusError
			switch {
			case tt.wantErr == 0 && err != nil:
				t.Fatal(err)
			case tt.wantErr == 0 && string(b) != "ok":
				t.Errorf("body %q", b)
			case tt.wantErr != 0 && (!errors.As(err, &se) || se.Code != tt.wantErr || !errors.Is(err, ErrStatus)):
				t.Errorf("err = %v, want status %d", err, tt.wantErr)
			}
			if hits.Load() != tt.wantHits {
				t.Errorf("requests = %d, want %d", hits.Load(), tt.wantHits)
			}
		})
	}
}

func TestErrorsNeverShowCredentials(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	f := New(Options{CacheDir: t.TempDir(), Backoff: time.Millisecond, Retries: 1})
	for _, base := range []string{srv.URL, closed.URL} {
		u := strings.Replace(base, "http://", "http://alice:hunter2@", 1) + "/f.tar.gz?X-Amz-Signature=deadbeef&token=t0psecret&v=1"
		_, err := f.File(context.Background(), u, "")
		if err == nil {
			t.Fatal("no error")
		}
		for _, secret := range []string{"alice", "hunter2", "deadbeef", "t0psecret"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows %q", err, secret)
			}
		}
		if !strings.Contains(err.Error(), "/f.tar.gz") || !strings.Contains(err.Error(), "v=1") {
			t.Errorf("error %q does not name the URL", err)
		}
	}
}

func TestFileURL(t *testing.T) {
	body := payload(12345)
	src := filepath.Join(t.TempDir(), "local.tar")
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFetcher(t)
	p, err := f.File(context.Background(), "file://"+src, sum(body))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
		t.Error("content differs")
	}
	b, err := f.Bytes(context.Background(), "file://"+src)
	if err != nil || !bytes.Equal(b, body) {
		t.Errorf("Bytes: %v", err)
	}
	_, err = f.File(context.Background(), "file://"+src+".missing", "")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), src+".missing") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestFileUnpinnedRevalidates(t *testing.T) {
	body := payload(2000)
	var hits atomic.Int32
	var full atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		w.Header().Set("ETag", `"v1"`)
		w.Write(body)
	}))
	defer srv.Close()
	f := newFetcher(t)
	p1, err := f.File(context.Background(), srv.URL+"/idx", "")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := f.File(context.Background(), srv.URL+"/idx", "")
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 || hits.Load() != 2 || full.Load() != 1 {
		t.Errorf("paths %s %s, requests %d, full bodies %d; want same path, 2 requests, 1 body", p1, p2, hits.Load(), full.Load())
	}
	if got, _ := os.ReadFile(p2); !bytes.Equal(got, body) {
		t.Error("content differs")
	}
}

func TestBadInput(t *testing.T) {
	f := newFetcher(t)
	ctx := context.Background()
	if _, err := f.File(ctx, "ftp://host/x", ""); err == nil || !strings.Contains(err.Error(), "ftp") {
		t.Errorf("ftp: %v", err)
	}
	for _, bad := range []string{"abc", "md5:" + strings.Repeat("0", 64), "sha1:" + strings.Repeat("0", 40), "md5:xyz"} {
		if _, err := f.File(ctx, "http://host/x", bad); err == nil || !strings.Contains(err.Error(), "invalid checksum") {
			t.Errorf("checksum %q: %v", bad, err)
		}
	}
	if _, err := New(Options{}).File(ctx, "http://host/x", ""); err == nil {
		t.Error("File without a cache dir succeeded")
	}
}

func TestContextCancelStopsRetrying(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", 503)
	}))
	defer srv.Close()
	f := New(Options{Backoff: time.Hour, Retries: 5})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := f.Bytes(ctx, srv.URL); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func BenchmarkFileWarmCache(b *testing.B) {
	body := payload(64 << 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	f := New(Options{CacheDir: b.TempDir()})
	want := sum(body)
	if _, err := f.File(context.Background(), srv.URL+"/x", want); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := f.File(context.Background(), srv.URL+"/x", want); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFileDownload(b *testing.B) {
	body := payload(64 << 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	want := sum(body)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		f := New(Options{CacheDir: b.TempDir()})
		if _, err := f.File(context.Background(), srv.URL+"/x", want); err != nil {
			b.Fatal(err)
		}
	}
}
