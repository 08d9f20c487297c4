package flist

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/s3test"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// s3Fixture starts versitygw with a bucket "zos" and makes a source tree.
func s3Fixture(t *testing.T) (*s3test.Server, string) {
	t.Helper()
	srv := s3test.StartT(t)
	if err := srv.CreateBucket(ctx, "zos"); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	makeTree(t, src)
	settle(t, src)
	return srv, src
}

// TestPackS3 packs to versitygw and unpacks from it. Routes carry no
// secret: unpacking from the flist's own routes is refused with an
// authentication error until the caller supplies the credentials, or the
// pack wrote a runtime route with read credentials (RouteOverride).
func TestPackS3(t *testing.T) {
	srv, src := s3Fixture(t)
	work := t.TempDir()
	packURL := srv.URL("zos", "flists/zosbuilder")
	st, err := store.Parse(packURL)
	if err != nil {
		t.Fatal(err)
	}
	fl := filepath.Join(work, "s3.fl")
	stats, err := Pack(ctx, src, fl, PackOptions{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	objects, err := srv.Objects("zos", "flists/zosbuilder")
	if err != nil {
		t.Fatal(err)
	}
	if distinct := distinctBlobs(t, fl); stats.Uploaded != distinct || objects != distinct {
		t.Errorf("%d uploaded, %d objects in the bucket, %d distinct blobs", stats.Uploaded, objects, distinct)
	}
	routes := routesOf(t, fl)
	if len(routes) != 1 || strings.Contains(routes[0].URL, srv.SecretKey) || !strings.Contains(routes[0].URL, srv.AccessKey+"@") {
		t.Fatalf("routes = %+v: want the user kept and no secret", routes)
	}
	raw, err := os.ReadFile(fl)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), srv.SecretKey) {
		t.Fatal("the secret is somewhere in the flist file")
	}

	// Packing the unchanged tree again settles the blobs with a listing,
	// not a HEAD request each.
	counted := &countExists{Store: st}
	repack, err := Pack(ctx, src, fl, PackOptions{Store: counted})
	if err != nil {
		t.Fatal(err)
	}
	if repack.Reused != stats.Files || repack.Uploaded != 0 || counted.n.Load() != 0 {
		t.Errorf("repack: %s; %d Exists calls", repack, counted.n.Load())
	}

	err = Unpack(ctx, fl, filepath.Join(work, "denied"), UnpackOptions{Routes: localRoutes})
	if !errors.Is(err, store.ErrAuth) {
		t.Errorf("unpack with the stripped route = %v, want ErrAuth", err)
	}
	dst := filepath.Join(work, "unpacked")
	if err := Unpack(ctx, fl, dst, UnpackOptions{Store: st}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)

	// The runtime route (here the same server; on a node a read-only key on
	// the gateway) lets the flist stand alone.
	runtime := filepath.Join(work, "runtime.fl")
	override := []store.Route{{Start: 0, End: 255, URL: packURL}}
	again, err := Pack(ctx, src, runtime, PackOptions{Store: st, RouteOverride: override})
	if err != nil {
		t.Fatal(err)
	}
	if again.Uploaded != 0 || again.Skipped != stats.Uploaded {
		t.Errorf("repack: %d uploaded, %d skipped, want 0 and %d", again.Uploaded, again.Skipped, stats.Uploaded)
	}
	dst2 := filepath.Join(work, "unpacked2")
	if err := Unpack(ctx, runtime, dst2, UnpackOptions{Routes: localRoutes}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst2)
	if rep, err := Verify(ctx, runtime, VerifyOptions{Deep: true, Routes: localRoutes}); err != nil || !rep.OK() {
		t.Errorf("verify: %s, %v", rep, err)
	}
}

func TestPackS3WrongSecret(t *testing.T) {
	srv, src := s3Fixture(t)
	const wrong = "not-the-right-secret"
	st, err := store.Parse(srv.URLWith(srv.AccessKey, wrong, "zos", ""))
	if err != nil {
		t.Fatal(err)
	}
	fl := filepath.Join(t.TempDir(), "denied.fl")
	_, err = Pack(ctx, src, fl, PackOptions{Store: st})
	if !errors.Is(err, store.ErrAuth) || !errors.Is(err, ErrUpload) {
		t.Fatalf("Pack = %v, want ErrUpload and ErrAuth", err)
	}
	if msg := err.Error(); strings.Contains(msg, wrong) || strings.Contains(msg, srv.SecretKey) ||
		!strings.Contains(msg, "authentication failed") {
		t.Errorf("message: %s", msg)
	}
	t.Logf("error: %v", err)
	if _, err := os.Stat(fl); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("flist left behind: %v", err)
	}
}

// countExists counts Exists calls and passes ExistsAll through.
type countExists struct {
	store.Store
	n atomic.Int64
}

func (c *countExists) Exists(ctx context.Context, id []byte) (bool, error) {
	c.n.Add(1)
	return c.Store.Exists(ctx, id)
}

func (c *countExists) ExistsAll(ctx context.Context, ids [][]byte) (map[string]bool, error) {
	return c.Store.(store.BatchExister).ExistsAll(ctx, ids)
}

// stopAfter passes requests to an S3 store and stops the server when the
// n-th upload has been stored: the server goes away in the middle of a pack.
type stopAfter struct {
	store.Store
	n       int64
	sets    atomic.Int64
	stopped atomic.Bool
	stop    func()
}

func (s *stopAfter) Set(ctx context.Context, id, blob []byte) error {
	err := s.Store.Set(ctx, id, blob)
	if err == nil && s.sets.Add(1) == s.n && s.stopped.CompareAndSwap(false, true) {
		s.stop()
	}
	return err
}

// TestPackS3ServerStops: the server stops mid-pack, the pack fails and
// leaves no flist; after a restart a rerun uploads exactly the blobs that
// are missing and the result unpacks to the same tree.
func TestPackS3ServerStops(t *testing.T) {
	srv, src := s3Fixture(t)
	work := t.TempDir()
	fl := filepath.Join(work, "mid.fl")
	st, err := store.Parse(srv.URL("zos", ""))
	if err != nil {
		t.Fatal(err)
	}
	flaky := &stopAfter{Store: st, n: 3, stop: func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	}}
	_, err = Pack(ctx, src, fl, PackOptions{Store: flaky, Parallel: 2, Retries: 2, RetryDelay: 10_000_000})
	if !errors.Is(err, ErrUpload) {
		t.Fatalf("Pack = %v, want ErrUpload", err)
	}
	t.Logf("error: %v", err)
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
	stored, err := srv.Objects("zos", "")
	if err != nil {
		t.Fatal(err)
	}
	if stored < 3 {
		t.Fatalf("%d objects stored before the stop, want at least 3", stored)
	}

	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	stats, err := Pack(ctx, src, fl, PackOptions{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	distinct := distinctBlobs(t, fl)
	if stats.Skipped != stored || stats.Uploaded != distinct-stored {
		t.Errorf("rerun: %d uploaded, %d skipped; want %d and %d", stats.Uploaded, stats.Skipped, distinct-stored, stored)
	}
	dst := filepath.Join(t.TempDir(), "unpacked")
	if err := Unpack(ctx, fl, dst, UnpackOptions{Store: st}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
}
