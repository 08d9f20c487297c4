package store

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/redact"
	"golang.org/x/sys/unix"
)

func id(b0 byte) []byte {
	out := bytes.Repeat([]byte{0xab}, 32)
	out[0] = b0
	return out
}

func TestStripPassword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"s3://user:pw@h:9000/b?region=r", "s3://user@h:9000/b?region=r"},
		{"s3s://AK:S%2Fx@h:443/b/p/q", "s3s://AK@h:443/b/p/q"},
		{"s3://user@h:9000/b", "s3://user@h:9000/b"},
		{"dir:///tmp/store0", "dir:///tmp/store0"},
		{"http://h:8080/store/", "http://h:8080/store/"},
		{"s3://:secret@h:9000/b", "s3://@h:9000/b"},
	}
	for _, tt := range tests {
		got, err := StripPassword(tt.in)
		if err != nil {
			t.Errorf("StripPassword(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("StripPassword(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec    string
		want    Route
		wantErr bool
	}{
		{"dir:///a", Route{0, 255, "dir:///a"}, false},
		{"00-7f=dir:///a", Route{0, 0x7f, "dir:///a"}, false},
		{"80-ff=s3://k:s@h:1/b", Route{0x80, 0xff, "s3://k:s@h:1/b"}, false},
		// rfs's grammar is lowercase only: "00-FF=" is not a range but part of the URL.
		{"00-FF=dir:///a", Route{0, 255, "00-FF=dir:///a"}, false},
		{"7f-00=dir:///a", Route{}, true},
	}
	for _, tt := range tests {
		got, err := ParseSpec(tt.spec)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseSpec(%q) error = %v, want error %v", tt.spec, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("ParseSpec(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		url  string
		want error
	}{
		{"zdb://hub.grid.tf:9900/ns", ErrNotSupported},
		{"server://http://localhost:8080", ErrNotSupported},
		{"ftp://h/x", ErrNotSupported},
		{"dir://relative/path", ErrInvalidURL},
		{"/no/scheme", ErrInvalidURL},
		{"s3://k:supersecret@h/bucket", ErrInvalidURL}, // no port
		{"s3://k:supersecret@h:9000", ErrInvalidURL},   // no bucket
		{"http://", ErrInvalidURL},
	}
	for _, tt := range tests {
		_, err := Open(tt.url)
		if !errors.Is(err, tt.want) {
			t.Errorf("Open(%q) = %v, want %v", tt.url, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "supersecret") {
			t.Errorf("Open(%q) error leaks the secret: %v", tt.url, err)
		}
	}
}

func TestParse(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	r, err := Parse("00-7f=dir://" + a + ", 80-ff=dir://" + b)
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{{0, 0x7f, "dir://" + a}, {0x80, 0xff, "dir://" + b}}
	got := r.Routes()
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("routes = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "dir:///a,,dir:///b", "zdb://h:9900"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestDir(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open("dir://" + root)
	if err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("x"), 100)
	if ok, err := s.Exists(ctx, id(1)); err != nil || ok {
		t.Fatalf("Exists before Set = %v, %v", ok, err)
	}
	if _, err := s.Get(ctx, id(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Set = %v, want ErrNotFound", err)
	}
	if err := s.Set(ctx, id(1), blob); err != nil {
		t.Fatal(err)
	}
	name := Hex(id(1))
	if _, err := os.Stat(filepath.Join(root, name[:2], name)); err != nil {
		t.Fatalf("sharded layout: %v", err)
	}
	got, err := s.Get(ctx, id(1))
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if ok, err := s.Exists(ctx, id(1)); err != nil || !ok {
		t.Fatalf("Exists after Set = %v, %v", ok, err)
	}
	// rfs v2.0.x wrote a flat layout; it is still read, and found by
	// Exists in a store that holds flat blobs when opened.
	flat := Hex(id(2))
	if err := os.WriteFile(filepath.Join(root, flat), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, id(2)); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("flat Get = %q, %v", got, err)
	}
	if ok, _ := NewDir(root).Exists(ctx, id(2)); !ok {
		t.Fatal("flat blob not found by Exists")
	}
	// A truncated leftover is not a blob, so a pack writes it again.
	short := Hex(id(3))
	if err := os.MkdirAll(filepath.Join(root, short[:2]), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, short[:2], short), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Exists(ctx, id(3)); ok {
		t.Fatal("empty file counted as an existing blob")
	}
	entries, _ := os.ReadDir(filepath.Join(root, name[:2]))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
	if r := s.Routes(); len(r) != 1 || r[0] != (Route{0, 255, "dir://" + root}) {
		t.Errorf("Routes = %+v", r)
	}
}

func TestHTTP(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := NewDir(root)
	blob := bytes.Repeat([]byte("y"), 64)
	if err := dir.Set(ctx, id(0x10), blob); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, Hex(id(0x20))), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/store/", http.StripPrefix("/store", http.FileServer(http.Dir(root))))
	mux.HandleFunc("/private/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, base := range []string{srv.URL + "/store", srv.URL + "/store/"} {
		s, err := Open(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, b0 := range []byte{0x10, 0x20} {
			got, err := s.Get(ctx, id(b0))
			if err != nil || !bytes.Equal(got, blob) {
				t.Errorf("%s: Get(%02x) = %q, %v", base, b0, got, err)
			}
			if ok, err := s.Exists(ctx, id(b0)); err != nil || !ok {
				t.Errorf("%s: Exists(%02x) = %v, %v", base, b0, ok, err)
			}
		}
		if _, err := s.Get(ctx, id(0x30)); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: missing blob: %v, want ErrNotFound", base, err)
		}
		if ok, err := s.Exists(ctx, id(0x30)); err != nil || ok {
			t.Errorf("%s: Exists(missing) = %v, %v", base, ok, err)
		}
		if err := s.Set(ctx, id(1), blob); !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: Set = %v, want ErrReadOnly", base, err)
		}
	}
	s, _ := Open(srv.URL + "/private")
	if _, err := s.Get(ctx, id(1)); !errors.Is(err, ErrAuth) {
		t.Errorf("403: %v, want ErrAuth", err)
	}
}

func TestRouter(t *testing.T) {
	ctx := context.Background()
	lo, hi, both := t.TempDir(), t.TempDir(), t.TempDir()
	r, err := Parse("00-7f=dir://" + lo + ",80-ff=dir://" + hi + ",70-8f=dir://" + both)
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("0123456789abcdefghij")
	for _, b0 := range []byte{0x00, 0x75, 0x85, 0xff} {
		if err := r.Set(ctx, id(b0), blob); err != nil {
			t.Fatal(err)
		}
	}
	has := func(root string, b0 byte) bool {
		ok, _ := NewDir(root).Exists(ctx, id(b0))
		return ok
	}
	tests := []struct {
		b0           byte
		lo, hi, both bool
	}{
		{0x00, true, false, false},
		{0x75, true, false, true},
		{0x85, false, true, true},
		{0xff, false, true, false},
	}
	for _, tt := range tests {
		if has(lo, tt.b0) != tt.lo || has(hi, tt.b0) != tt.hi || has(both, tt.b0) != tt.both {
			t.Errorf("blob %02x: lo=%v hi=%v both=%v, want %v %v %v", tt.b0,
				has(lo, tt.b0), has(hi, tt.b0), has(both, tt.b0), tt.lo, tt.hi, tt.both)
		}
	}
	// A replica that lost the blob: Exists reports false so a pack refills
	// it, and Get still finds the other copy.
	name := Hex(id(0x75))
	if err := os.Remove(filepath.Join(lo, name[:2], name)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.Exists(ctx, id(0x75)); ok {
		t.Error("Exists true with a replica missing")
	}
	if got, err := r.Get(ctx, id(0x75)); err != nil || !bytes.Equal(got, blob) {
		t.Errorf("Get with one replica missing = %q, %v", got, err)
	}
	if _, err := r.Get(ctx, id(0x76)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	half := &Router{}
	half.Add(0, 0x7f, NewDir(lo))
	if err := half.Set(ctx, id(0x90), blob); !errors.Is(err, ErrNotRoutable) {
		t.Errorf("Set outside routes = %v, want ErrNotRoutable", err)
	}
}

func TestS3ConfigURLs(t *testing.T) {
	tests := []struct {
		name      string
		cfg       S3Config
		pack      string
		route     string
		packErr   bool
		routeErr  bool
		errNaming string
	}{
		{
			name: "garage, route endpoint from the S3 endpoint",
			cfg: S3Config{Endpoint: "https://s3.example.com", Region: "garage", Bucket: "zos", Prefix: "/flists/zosbuilder/",
				AccessKey: "GKwrite", SecretKey: "wsecret", ReadAccessKey: "GKread", ReadSecretKey: "rsecret",
				RoutePath: "/blobs", RouteRegion: "garage"},
			pack:  "s3s://GKwrite:wsecret@s3.example.com:443/zos/flists/zosbuilder?region=garage",
			route: "s3s://GKread:rsecret@s3.example.com:443/blobs?region=garage",
		},
		{
			name: "route endpoint and path",
			cfg: S3Config{Endpoint: "http://10.0.0.1:3900", Bucket: "zos", AccessKey: "a", SecretKey: "b",
				RouteEndpoint: "https://hub.example.com:8443", RoutePath: "/store/", RouteRegion: "eu"},
			pack:  "s3://a:b@10.0.0.1:3900/zos",
			route: "s3s://hub.example.com:8443/store?region=eu",
		},
		{
			name:      "endpoint with path",
			cfg:       S3Config{Endpoint: "http://h:1/x", Bucket: "b", AccessKey: "a", SecretKey: "s"},
			packErr:   true,
			routeErr:  true,
			errNaming: "S3_ENDPOINT",
		},
		{
			name:      "no write credentials",
			cfg:       S3Config{Endpoint: "http://h:1", Bucket: "b", RoutePath: "blobs/"},
			packErr:   true,
			route:     "s3://h:1/blobs",
			errNaming: "S3_ACCESS_KEY",
		},
		{
			name:      "no route path",
			cfg:       S3Config{Endpoint: "http://h:1", Bucket: "b", AccessKey: "a", SecretKey: "s", RoutePath: "/../"},
			pack:      "s3://a:s@h:1/b",
			routeErr:  true,
			errNaming: "ROUTE_PATH",
		},
		{
			name:      "read secret rfs cannot use",
			cfg:       S3Config{Endpoint: "http://h:1", Bucket: "b", AccessKey: "a", SecretKey: "s", ReadAccessKey: "r", ReadSecretKey: "a/b", RoutePath: "/blobs"},
			pack:      "s3://a:s@h:1/b",
			routeErr:  true,
			errNaming: "READ_SECRET_KEY",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pack, err := tt.cfg.PackURL()
			if (err != nil) != tt.packErr {
				t.Fatalf("PackURL() = %q, %v", pack, err)
			}
			if err != nil && !strings.Contains(err.Error(), tt.errNaming) {
				t.Errorf("PackURL error %q does not name %s", err, tt.errNaming)
			}
			if !tt.packErr && pack != tt.pack {
				t.Errorf("PackURL() = %q, want %q", pack, tt.pack)
			}
			route, err := tt.cfg.RouteURL()
			if (err != nil) != tt.routeErr {
				t.Fatalf("RouteURL() = %q, %v", route, err)
			}
			if err != nil && !strings.Contains(err.Error(), tt.errNaming) {
				t.Errorf("RouteURL error %q does not name %s", err, tt.errNaming)
			}
			if !tt.routeErr && route != tt.route {
				t.Errorf("RouteURL() = %q, want %q", route, tt.route)
			}
			if !tt.packErr {
				if _, err := Open(pack); err != nil {
					t.Errorf("Open(PackURL()): %v", err)
				}
			}
		})
	}
}

// TestIsLocal: a store is local when every blob it stores goes to this
// machine's file systems.
func TestIsLocal(t *testing.T) {
	dir := "dir://" + t.TempDir()
	tests := []struct {
		spec string
		want bool
	}{
		{dir, true},
		{"00-7f=" + dir + ",80-ff=" + dir, true},
		{"00-7f=" + dir + ",80-ff=s3://k:s@127.0.0.1:9/b", false},
		{"s3://k:s@127.0.0.1:9/b", false},
		{"http://127.0.0.1:9/blobs", false},
	}
	for _, tt := range tests {
		s, err := Parse(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := IsLocal(s); got != tt.want {
			t.Errorf("IsLocal(%s) = %v, want %v", redact.MaskURL(tt.spec), got, tt.want)
		}
		if got, _ := IsLocal(NewRetry(s, RetryOptions{})); got != tt.want {
			t.Errorf("IsLocal(NewRetry(%s)) = %v, want %v", redact.MaskURL(tt.spec), got, tt.want)
		}
	}
	if local, _ := IsLocal(&Router{}); local {
		t.Error("an empty router is local")
	}
}

// TestDirWritesWait: a dir store's writes wait for a device unless its
// root is in memory, which is asked of the nearest folder that exists
// before the first Set creates the root.
func TestDirWritesWait(t *testing.T) {
	inMemory := func(dir string) bool {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
	}
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, dir string }{
		{"memory (/dev/shm)", "/dev/shm"},
		{"the source tree's file system", cwd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(tt.dir); err != nil {
				t.Skip(err)
			}
			root := filepath.Join(tt.dir, "no-such-folder", "store")
			local, waits := IsLocal(NewDir(root))
			if !local || waits != !inMemory(tt.dir) {
				t.Errorf("NewDir(%s): local %v, writes wait %v; the file system is in memory: %v", root, local, waits, inMemory(tt.dir))
			}
			r := &Router{}
			r.Add(0, 127, NewDir(root))
			r.Add(128, 255, NewDir(t.TempDir()))
			if _, rw := IsLocal(r); rw != (waits || !inMemory(t.TempDir())) {
				t.Errorf("router: writes wait %v", rw)
			}
		})
	}
}
