package store

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/s3test"
	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
)

// TestRoutePolicy is item 6: routes read from an flist never reach a
// link-local address (cloud metadata services), and reach loopback and
// local directories only when allowed.
func TestRoutePolicy(t *testing.T) {
	strict := &RoutePolicy{}
	local := &RoutePolicy{AllowLoopback: true, AllowDirs: []string{"/srv/blobs"}}
	tests := []struct {
		url     string
		policy  *RoutePolicy
		refused bool
	}{
		{"http://169.254.169.254/latest/meta-data", strict, true},
		{"http://169.254.169.254/latest/meta-data", local, true},
		{"s3://k:s@169.254.169.254:80/bucket", local, true},
		{"http://[fe80::1]:8080/blobs", local, true},
		{"http://[fe80::1%25eth0]:8080/blobs", local, true},
		{"http://[::ffff:169.254.169.254]/", local, true},
		{"http://[64:ff9b::a9fe:a9fe]/", local, true},
		{"http://[fd00:ec2::254]/", local, true},
		{"http://127.0.0.1:9000/blobs", strict, true},
		{"s3://k:s@127.0.0.1:9000/blobs", strict, true},
		{"http://[::1]:9000/blobs", strict, true},
		{"http://0.0.0.0:9000/blobs", strict, true},
		{"http://127.0.0.1:9000/blobs", local, false},
		{"s3://k:s@127.0.0.1:9000/blobs", local, false},
		{"http://10.1.2.3:9000/blobs", strict, false},
		{"s3s://k:s@s3.example.com:443/blobs", strict, false},
		{"dir:///srv/blobs", strict, true},
		{"dir:///srv/blobs", local, false},
		{"dir:///srv/blobs/sub", local, false},
		{"dir:///srv/blobsx", local, true},
		{"dir:///srv/blobs/../../etc", local, true},
		{"dir:///srv/blobs", nil, false},
		{"http://169.254.169.254/", nil, false},
	}
	for _, tt := range tests {
		_, err := OpenWith(tt.url, Options{Policy: tt.policy})
		if refused := errors.Is(err, ErrRouteRefused); refused != tt.refused {
			t.Errorf("OpenWith(%s, %+v) = %v; refused %v, want %v", tt.url, tt.policy, err, refused, tt.refused)
		}
		if err != nil && strings.Contains(err.Error(), ":s@") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

// TestRoutePolicyAfterResolution: a host name is checked on the address it
// resolves to when the connection is made, so DNS cannot bypass the policy.
func TestRoutePolicyAfterResolution(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "blob") }))
	defer srv.Close()
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	s, err := OpenWith(byName, Options{Policy: &RoutePolicy{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), id(1)); !errors.Is(err, ErrRouteRefused) {
		t.Errorf("Get through localhost = %v, want ErrRouteRefused", err)
	}
	s, err = OpenWith(byName, Options{Policy: &RoutePolicy{AllowLoopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := s.Get(context.Background(), id(1)); err != nil || string(b) != "blob" {
		t.Errorf("Get with loopback allowed = %q, %v", b, err)
	}
}

func TestParseRoutePolicy(t *testing.T) {
	p, err := ParseRoutePolicy(" loopback , dir:///srv/blobs,dir:///var/cache/../store ")
	if err != nil {
		t.Fatal(err)
	}
	if !p.AllowLoopback || len(p.AllowDirs) != 2 || p.AllowDirs[0] != "/srv/blobs" || p.AllowDirs[1] != "/var/store" {
		t.Errorf("policy = %+v", p)
	}
	if p, err := ParseRoutePolicy(""); err != nil || p.AllowLoopback || len(p.AllowDirs) != 0 {
		t.Errorf("empty: %+v, %v", p, err)
	}
	for _, bad := range []string{"dir://relative", "169.254.0.0/16", "dir:///a,linklocal"} {
		if _, err := ParseRoutePolicy(bad); err == nil {
			t.Errorf("ParseRoutePolicy(%q) accepted", bad)
		}
	}
}

// TestStoreTimeouts is item 7 for the stores: an HTTP or S3 endpoint that
// accepts and never answers, or sends headers and stalls, fails the read.
func TestStoreTimeouts(t *testing.T) {
	short := httpclient.Timeouts{Connect: time.Second, TLSHandshake: 300 * time.Millisecond,
		ResponseHeader: 300 * time.Millisecond, Idle: 300 * time.Millisecond}
	silent, stalling := testutil.SilentServer(t), testutil.StallingServer(t)
	for _, url := range []string{
		"http://" + silent + "/blobs",
		"http://" + stalling + "/blobs",
		"https://" + silent + "/blobs",
		"s3://key:secret@" + silent + "/bucket",
		"s3://key:secret@" + stalling + "/bucket",
	} {
		s, err := OpenWith(url, Options{Timeouts: short})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if b, err := s.Get(ctx, id(1)); err == nil {
			t.Errorf("%s: Get = %d bytes, want a timeout", url, len(b))
		}
		// A HEAD gets its answer from the stalling server (headers only).
		if _, err := s.Exists(ctx, id(1)); err == nil && strings.Contains(url, silent) {
			t.Errorf("%s: Exists succeeded, want a timeout", url)
		}
	}
}

// TestS3WithRoutePolicy: the loopback S3 server of the tests is reachable
// only when loopback is allowed.
func TestS3WithRoutePolicy(t *testing.T) {
	srv := s3test.StartT(t)
	ctx := context.Background()
	if err := srv.CreateBucket(ctx, "blobs"); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenWith(srv.URL("blobs", ""), Options{Policy: &RoutePolicy{}}); !errors.Is(err, ErrRouteRefused) {
		t.Errorf("strict policy: %v", err)
	}
	s, err := OpenWith(srv.URL("blobs", ""), Options{Policy: &RoutePolicy{AllowLoopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Exists(ctx, id(1)); err != nil || ok {
		t.Errorf("Exists = %v, %v", ok, err)
	}
}
