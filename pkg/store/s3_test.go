package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/s3test"
)

func TestS3(t *testing.T) {
	srv := s3test.StartT(t)
	ctx := context.Background()
	if err := srv.CreateBucket(ctx, "blobs"); err != nil {
		t.Fatal(err)
	}
	s, err := Open(srv.URL("blobs", "zos/flists"))
	if err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("s3"), 100)
	if ok, err := s.Exists(ctx, id(7)); err != nil || ok {
		t.Fatalf("Exists before Set = %v, %v", ok, err)
	}
	if _, err := s.Get(ctx, id(7)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Set = %v, want ErrNotFound", err)
	}
	if err := s.Set(ctx, id(7), blob); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Exists(ctx, id(7)); err != nil || !ok {
		t.Fatalf("Exists after Set = %v, %v", ok, err)
	}
	got, err := s.Get(ctx, id(7))
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("Get = %d bytes, %v", len(got), err)
	}
	// Object name [PREFIX/]<hex>: versitygw keeps objects as plain files.
	onDisk, err := os.ReadFile(filepath.Join(srv.Dir, "blobs", "zos", "flists", Hex(id(7))))
	if err != nil || !bytes.Equal(onDisk, blob) {
		t.Fatalf("object file: %v", err)
	}
}

func TestS3Errors(t *testing.T) {
	srv := s3test.StartT(t)
	ctx := context.Background()
	if err := srv.CreateBucket(ctx, "blobs"); err != nil {
		t.Fatal(err)
	}
	const wrong = "definitely-not-the-secret"
	tests := []struct {
		name      string
		url       string
		want      error
		readsFail bool // HEAD and GET fail too (an unknown key answers HEAD with a bare 404)
	}{
		{"wrong secret", srv.URLWith(srv.AccessKey, wrong, "blobs", ""), ErrAuth, true},
		{"unknown key", srv.URLWith("nobody", wrong, "blobs", ""), ErrAuth, false},
		{"no bucket", srv.URL("missing", ""), ErrNoBucket, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Set(ctx, id(1), []byte("0123456789abcdefghij"))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Set = %v, want %v", err, tt.want)
			}
			for _, secret := range []string{wrong, srv.SecretKey} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
			if tt.readsFail {
				if _, err := s.Exists(ctx, id(1)); !errors.Is(err, ErrAuth) {
					t.Errorf("Exists = %v, want ErrAuth", err)
				}
				if _, err := s.Get(ctx, id(1)); !errors.Is(err, ErrAuth) {
					t.Errorf("Get = %v, want ErrAuth", err)
				}
			}
		})
	}
	// A stopped server is a network error, not "not found".
	s, _ := Open(srv.URL("blobs", ""))
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Exists(ctx, id(1)); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Exists on a stopped server = %v, want a network error", err)
	}
}

func TestUploadManifest(t *testing.T) {
	srv := s3test.StartT(t)
	ctx := context.Background()
	if err := srv.CreateBucket(ctx, "zos"); err != nil {
		t.Fatal(err)
	}
	fl := filepath.Join(t.TempDir(), "modules-6.12.44-Zero-OS.fl")
	if err := os.WriteFile(fl, []byte("not really sqlite"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := S3Config{Endpoint: srv.Endpoint(), Region: s3test.Region, Bucket: "zos", Prefix: "blobs",
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, ManifestsSubpath: "/flists/manifests/"}
	loc, err := cfg.UploadManifest(ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	if want := srv.Endpoint() + "/zos/flists/manifests/modules-6.12.44-Zero-OS.fl"; loc != want {
		t.Errorf("location = %q, want %q", loc, want)
	}
	got, err := os.ReadFile(filepath.Join(srv.Dir, "zos", "flists", "manifests", "modules-6.12.44-Zero-OS.fl"))
	if err != nil || string(got) != "not really sqlite" {
		t.Fatalf("uploaded object: %q, %v", got, err)
	}
	cfg.SecretKey = "wrong-secret-value"
	if _, err := cfg.UploadManifest(ctx, fl); !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "wrong-secret-value") {
		t.Errorf("UploadManifest with a wrong secret = %v, want ErrAuth without the secret", err)
	}
}

// TestS3ExistsAll settles many ids with a listing; with more objects than
// the page budget covers, what it settles is right and the rest is left
// to Exists.
func TestS3ExistsAll(t *testing.T) {
	srv := s3test.StartT(t)
	ctx := context.Background()
	if err := srv.CreateBucket(ctx, "blobs"); err != nil {
		t.Fatal(err)
	}
	s, err := Open(srv.URL("blobs", "p"))
	if err != nil {
		t.Fatal(err)
	}
	mk := func(i int) []byte {
		id := make([]byte, 32)
		id[0], id[1], id[31] = byte(i>>8), byte(i), 0x55
		return id
	}
	const stored = 1500
	for i := range stored {
		if err := s.Set(ctx, mk(2*i), []byte("0123456789abcdefghij")); err != nil {
			t.Fatal(err)
		}
	}
	// Few ids: one page of budget (1000 keys), so only ids up to about the
	// 1000th stored key are settled.
	query := [][]byte{mk(0), mk(1), mk(500), mk(501), mk(2*stored - 2), mk(2*stored + 10)}
	got, err := s.(BatchExister).ExistsAll(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range query {
		ok, settled := got[Hex(id)]
		want := i%2 == 0 && i < 5
		if settled && ok != want {
			t.Errorf("id %d: settled as %v, want %v", i, ok, want)
		}
		if i < 4 && !settled {
			t.Errorf("id %d within the first page not settled", i)
		}
		if i >= 4 && settled {
			t.Errorf("id %d beyond the budget settled", i)
		}
	}
	// Many ids: the listing runs to the end, and everything is settled,
	// including ids after the last key.
	var many [][]byte
	for i := range 2*stored + 20 {
		many = append(many, mk(i))
	}
	got, err = s.(BatchExister).ExistsAll(ctx, many)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range many {
		ok, settled := got[Hex(id)]
		if !settled || ok != (i%2 == 0 && i < 2*stored) {
			t.Fatalf("id %d: %v settled=%v", i, ok, settled)
		}
	}
	// A router settles ids only through stores that can list.
	r := &Router{}
	r.Add(0x00, 0x07, s)
	r.Add(0x08, 0xff, NewDir(t.TempDir()))
	got, err = r.ExistsAll(ctx, [][]byte{mk(0), mk(1), mk(0x900)})
	if err != nil {
		t.Fatal(err)
	}
	if ok, settled := got[Hex(mk(0))]; !ok || !settled {
		t.Errorf("router: stored id %v %v", ok, settled)
	}
	if ok, settled := got[Hex(mk(1))]; ok || !settled {
		t.Errorf("router: missing id %v %v", ok, settled)
	}
	if _, settled := got[Hex(mk(0x900))]; settled {
		t.Error("router settled an id of the dir store")
	}
}
