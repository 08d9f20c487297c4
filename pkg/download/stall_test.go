package download

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
)

// TestStalledServers is item 7: a server that accepts and never answers,
// or that sends headers and then stalls, fails the download after the
// retries, with an error that says how many attempts were made and why the
// last one failed. The timeouts are short options; the test has no clock.
func TestStalledServers(t *testing.T) {
	short := httpclient.Timeouts{Connect: time.Second, TLSHandshake: 300 * time.Millisecond,
		ResponseHeader: 300 * time.Millisecond, Idle: time.Second}
	tests := []struct {
		name string
		url  string
		want string
	}{
		{"accepts and never answers", "http://" + testutil.SilentServer(t) + "/file", "timeout awaiting response headers"},
		{"headers then stalls", "http://" + testutil.StallingServer(t) + "/file", "stalled"},
		{"TLS server that never handshakes", "https://" + testutil.SilentServer(t) + "/file", "TLS handshake timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(Options{CacheDir: t.TempDir(), Retries: 2, Backoff: time.Millisecond, Timeouts: short})
			for what, get := range map[string]func() error{
				"File":  func() error { _, err := f.File(context.Background(), tt.url, ""); return err },
				"Bytes": func() error { _, err := f.Bytes(context.Background(), tt.url); return err },
			} {
				err := get()
				if err == nil || !strings.Contains(err.Error(), "after 3 attempts") || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s = %v; want the attempts and %q", what, err, tt.want)
				}
			}
		})
	}
}
