package download

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

func md5sum(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestParseChecksum(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	tests := []struct {
		in   string
		want Checksum
	}{
		{"", Checksum{}},
		{sha, Checksum{"sha256", sha}},
		{" SHA256:" + strings.ToUpper(sha) + " ", Checksum{"sha256", sha}},
		{"md5:6427DAA42CF93BA65D0377E29EA57148", Checksum{"md5", "6427daa42cf93ba65d0377e29ea57148"}},
	}
	for _, tt := range tests {
		got, err := ParseChecksum(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseChecksum(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	if c, _ := ParseChecksum("md5:6427daa42cf93ba65d0377e29ea57148"); !c.Weak() || c.String() != "md5:6427daa42cf93ba65d0377e29ea57148" {
		t.Errorf("md5 pin: weak %v, string %q", c.Weak(), c.String())
	}
	if c, _ := ParseChecksum("sha256:" + sha); c.Weak() || c.String() != sha {
		t.Errorf("sha256 pin: weak %v, string %q (a bare hex keeps the cache key of earlier builds)", c.Weak(), c.String())
	}
}

// An md5 pin verifies by md5, keys its own cache entry (a sha256 pin of
// the same URL is another file), serves a warm cache without a request,
// and a wrong md5 fails with ErrChecksum naming both digests and keeps
// nothing.
func TestFileMD5Pin(t *testing.T) {
	body := payload(50_000)
	var hits atomic.Int32
	srv := serve(t, body, &hits)
	f := newFetcher(t)
	ctx := context.Background()
	url := srv.URL + "/corex-2.1.4-amd64-linux-static"

	p1, err := f.File(ctx, url, "md5:"+md5sum(body))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p1); !bytes.Equal(got, body) {
		t.Fatal("content differs")
	}
	if p2, err := f.File(ctx, url, "md5:"+strings.ToUpper(md5sum(body))); err != nil || p2 != p1 || hits.Load() != 1 {
		t.Errorf("warm md5 cache: %s, %v, %d requests; want %s and 1 request", p2, err, hits.Load(), p1)
	}
	p3, err := f.File(ctx, url, sum(body))
	if err != nil || p3 == p1 || hits.Load() != 2 {
		t.Errorf("sha256 pin of the same URL: %s, %v, %d requests; want its own cache entry", p3, err, hits.Load())
	}

	wrong := strings.Repeat("0", 32)
	_, err = f.File(ctx, srv.URL+"/other", "md5:"+wrong)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "expected md5 "+wrong+", got "+md5sum(body)) {
		t.Errorf("wrong md5: %v", err)
	}
	for _, p := range regularFiles(t, f.opt.CacheDir) {
		if strings.Contains(p, "other") {
			t.Errorf("a download with a wrong md5 stayed in the cache: %s", p)
		}
	}
}
