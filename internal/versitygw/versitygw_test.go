package versitygw_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/threefoldtech/zosbuilder/internal/s3test"
	"github.com/threefoldtech/zosbuilder/internal/versitygw"
)

func TestStopRestart(t *testing.T) {
	s := s3test.StartT(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(s.Addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: versitygw.Region})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, "bkt", "p/x", bytes.NewReader([]byte("hi")), 2, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Objects("bkt", "p"); err != nil || n != 1 {
		t.Fatalf("Objects = %d, %v", n, err)
	}
	addr := s.Addr
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.Endpoint()); err == nil {
		t.Fatal("server still answers after Stop")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Addr != addr {
		t.Errorf("address changed: %s, was %s", s.Addr, addr)
	}
	if _, err := c.StatObject(ctx, "bkt", "p/x", minio.StatObjectOptions{}); err != nil {
		t.Errorf("object lost over a restart: %v", err)
	}
}
