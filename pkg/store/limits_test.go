package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/s3test"
)

// endless is a body of n bytes made on the fly.
func endless(n int64) io.Reader { return io.LimitReader(zeros{}, n) }

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestBlobSizeLimit is item 4: no store reads more than MaxBlobSize bytes of
// a blob, whatever the server or the disk holds; the error names the store
// and the blob.
func TestBlobSizeLimit(t *testing.T) {
	ctx := context.Background()
	const huge = 300 << 20
	blobID := id(0x42)
	check := func(t *testing.T, s Store, where string) {
		t.Helper()
		b, err := s.Get(ctx, blobID)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Get = %d bytes, %v; want ErrTooLarge", len(b), err)
		}
		for _, w := range []string{where, Hex(blobID)} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %q", err, w)
			}
		}
	}
	t.Run("http with a length", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "314572800")
			io.Copy(w, endless(huge))
		}))
		defer srv.Close()
		s, err := Open(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		check(t, s, srv.URL)
	})
	t.Run("http chunked", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.Copy(w, endless(huge)) // no length: chunked
		}))
		defer srv.Close()
		s, err := Open(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		check(t, s, srv.URL)
	})
	t.Run("dir", func(t *testing.T) {
		root := t.TempDir()
		p := filepath.Join(root, Hex(blobID)[:2], Hex(blobID))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, MaxBlobSize+1), 0o644); err != nil {
			t.Fatal(err)
		}
		check(t, NewDir(root), root)
	})
	t.Run("s3", func(t *testing.T) {
		srv := s3test.StartT(t)
		if err := srv.CreateBucket(ctx, "blobs"); err != nil {
			t.Fatal(err)
		}
		s, err := Open(srv.URL("blobs", ""))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, blobID, bytes.Repeat([]byte{1}, MaxBlobSize+1)); err != nil {
			t.Fatal(err)
		}
		check(t, s, srv.Addr)
	})
	t.Run("a blob of exactly MaxBlobSize is read", func(t *testing.T) {
		root := t.TempDir()
		d := NewDir(root)
		if err := d.Set(ctx, blobID, make([]byte, MaxBlobSize)); err != nil {
			t.Fatal(err)
		}
		if b, err := d.Get(ctx, blobID); err != nil || len(b) != MaxBlobSize {
			t.Errorf("Get = %d bytes, %v", len(b), err)
		}
	})
}
