// Package s3test gives tests a real S3 server: versitygw on the loopback
// interface (internal/versitygw), skipped when it is not installed and
// failing instead under CI. It imports testing, so only tests may import it.
package s3test

import (
	"context"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/internal/versitygw"
)

// Region is the region versitygw answers for by default.
const Region = versitygw.Region

// Server is a running versitygw.
type Server = versitygw.Server

// Bin returns the versitygw executable, or "" when it is not installed.
func Bin() string { return versitygw.Bin() }

// StartT starts a server for a test: it skips (fails under CI) when
// versitygw is missing, marks the test slow, and stops the server at cleanup.
func StartT(t testing.TB) *Server {
	t.Helper()
	return StartWithT(t, Options{})
}

// Options configure a test server (see versitygw.Options).
type Options = versitygw.Options

// StartWithT is StartT with options; Bin and Dir are filled in when empty.
func StartWithT(t testing.TB, opt Options) *Server {
	t.Helper()
	testutil.Slow(t)
	bin := Bin()
	if bin == "" {
		testutil.Missing(t, "versitygw not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	opt.Bin = bin
	if opt.Dir == "" {
		opt.Dir = t.TempDir()
	}
	s, err := versitygw.Start(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop versitygw: %v", err)
		}
	})
	return s
}
