package download

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefusesEscapingNames is item 10: a URL whose last element is "..",
// "." or holds a NUL or a backslash would make the cache path the cache
// folder itself or a path outside it; such downloads are refused before
// anything is written, and nothing appears outside the cache folder.
func TestRefusesEscapingNames(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("body")) }))
	defer srv.Close()
	for _, u := range []string{"/a/..", "/a/%2e%2e", "/..", "/a/.", "/a/x%00y", `/a/x%5C..`} {
		parent := t.TempDir()
		cache := filepath.Join(parent, "cache")
		f := New(Options{CacheDir: cache, Retries: -1})
		p, err := f.File(context.Background(), srv.URL+u, "")
		if err == nil || !strings.Contains(err.Error(), "file name") {
			t.Errorf("File(%s) = %q, %v; want a file name error", u, p, err)
		}
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if e.Name() != "cache" {
				t.Errorf("File(%s) wrote %s outside the cache folder", u, e.Name())
			}
		}
	}
	// A URL naming no file downloads as "download"; a directory URL as
	// the directory's name.
	f := New(Options{CacheDir: t.TempDir(), Retries: -1})
	for u, want := range map[string]string{"/": "download", "/dir/": "dir"} {
		if p, err := f.File(context.Background(), srv.URL+u, ""); err != nil || filepath.Base(p) != want {
			t.Errorf("File(%s) = %q, %v; want %s", u, p, err, want)
		}
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"alpine-minirootfs-3.22.1-x86_64.tar.gz": true, "a..b": true, "..a": true,
		"": false, ".": false, "..": false, "a/b": false, `a\b`: false, "a\x00b": false,
	} {
		if err := CheckName(name); (err == nil) != ok {
			t.Errorf("CheckName(%q) = %v", name, err)
		}
	}
}
