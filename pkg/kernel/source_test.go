package kernel

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/download"
)

// fakeSource is a tar.xz shaped like a kernel tarball: one top folder
// holding a Makefile that declares the version.
func fakeSource(t *testing.T, top, version, extra string) []byte {
	t.Helper()
	parts := strings.SplitN(version, ".", 3)
	mk := "# SPDX\nVERSION = " + parts[0] + "\nPATCHLEVEL = " + parts[1] + "\nSUBLEVEL = " + parts[2] + "\nEXTRAVERSION =\nNAME = Test\n"
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for name, body := range map[string]string{top + "/Makefile": mk, top + "/README": extra} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var xb bytes.Buffer
	xw, err := xz.NewWriter(&xb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := xw.Write(tb.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	return xb.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// mirror serves files like kernel.org's v6.x/ directory.
func mirror(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[strings.TrimPrefix(r.URL.Path, "/pub/linux/kernel/v6.x/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func sumsFile(lines ...string) []byte {
	return []byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + strings.Join(lines, "\n") +
		"\n-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n")
}

func TestSourceFromMirror(t *testing.T) {
	ctx := context.Background()
	tarball := fakeSource(t, "linux-6.12.44", "6.12.44", "v1")
	other := fakeSource(t, "linux-6.12.43", "6.12.43", "")
	files := map[string][]byte{
		"linux-6.12.44.tar.xz": tarball,
		"sha256sums.asc": sumsFile(
			sha(other)+"  linux-6.12.43.tar.xz",
			"garbage line linux-6.12.44.tar.xz",
			sha(tarball)+"  linux-6.12.44.tar.xz",
		),
	}
	srv := mirror(t, files)
	cache, work := t.TempDir(), t.TempDir()
	opt := SourceOptions{Version: "6.12.44", URL: srv.URL + "/pub/linux/kernel/v6.x",
		Fetcher: download.New(download.Options{CacheDir: cache, Retries: -1})}
	tree, err := Source(ctx, work, opt)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := TreeVersion(tree); err != nil || v != "6.12.44" {
		t.Fatalf("TreeVersion = %q, %v", v, err)
	}
	// A second run keeps the tree (and its build objects).
	testutil.WriteFile(t, filepath.Join(tree, "vmlinux.o"), "object", 0o644)
	if _, err := Source(ctx, work, opt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tree, "vmlinux.o")); err != nil {
		t.Fatalf("unchanged source was extracted again: %v", err)
	}
	// A new tarball replaces the tree.
	tarball2 := fakeSource(t, "linux-6.12.44", "6.12.44", "v2")
	files["linux-6.12.44.tar.xz"] = tarball2
	files["sha256sums.asc"] = sumsFile(sha(tarball2) + "  linux-6.12.44.tar.xz")
	if _, err := Source(ctx, work, opt); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(tree, "README")); string(b) != "v2" {
		t.Fatalf("README = %q after a new tarball", b)
	}
	if _, err := os.Stat(filepath.Join(tree, "vmlinux.o")); !os.IsNotExist(err) {
		t.Fatalf("old build objects survived a new source: %v", err)
	}
	if ents, _ := filepath.Glob(filepath.Join(work, ".*")); len(ents) != 0 {
		t.Errorf("leftovers in the work directory: %v", ents)
	}
}

func TestSourceChecksumMismatch(t *testing.T) {
	ctx := context.Background()
	tarball := fakeSource(t, "linux-6.12.44", "6.12.44", "")
	wrong := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name   string
		pinned string
		sums   []byte
	}{
		{"from sha256sums.asc", "", sumsFile(wrong + "  linux-6.12.44.tar.xz")},
		{"pinned", wrong, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := mirror(t, map[string][]byte{"linux-6.12.44.tar.xz": tarball, "sha256sums.asc": c.sums})
			cache, work := t.TempDir(), t.TempDir()
			_, err := Source(ctx, work, SourceOptions{Version: "6.12.44", URL: srv.URL + "/pub/linux/kernel/v6.x/", SHA256: c.pinned,
				Fetcher: download.New(download.Options{CacheDir: cache, Retries: -1})})
			if !errors.Is(err, download.ErrChecksum) {
				t.Fatalf("err = %v, want ErrChecksum", err)
			}
			if !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), sha(tarball)) {
				t.Errorf("error does not name expected and actual sha256: %v", err)
			}
			var left []string
			filepath.Walk(cache, func(p string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() && strings.Contains(p, "linux-6.12.44.tar.xz") {
					left = append(left, p)
				}
				return nil
			})
			if len(left) != 0 {
				t.Errorf("a tarball with a wrong checksum stayed in the cache: %v", left)
			}
			if _, err := os.Stat(filepath.Join(work, "linux")); !os.IsNotExist(err) {
				t.Errorf("tree extracted despite the checksum failure")
			}
		})
	}
}

func TestSourceLocalTarball(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "my-kernel.tar.xz")
	testutil.WriteFile(t, p, string(fakeSource(t, "any-top-folder", "6.1.99", "local")), 0o644)
	tree, err := Source(context.Background(), filepath.Join(dir, "work"), SourceOptions{Version: "6.1.99", Tarball: p})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(tree, "README")); string(b) != "local" {
		t.Fatalf("README = %q", b)
	}
	_, err = Source(context.Background(), filepath.Join(dir, "work2"), SourceOptions{Version: "6.12.44", Tarball: p})
	if !errors.Is(err, ErrVersionMismatch) || !strings.Contains(err.Error(), "6.1.99") {
		t.Fatalf("wrong KERNEL_VERSION: err = %v", err)
	}
}

func TestListedSHA256(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("B", 64)
	list := sumsFile(a+"  linux-6.12.44.tar.xz", b+" *linux-6.12.45.tar.xz", "x  linux-6.12.46.tar.xz", b+"  ../linux-6.12.47.tar.xz")
	for name, want := range map[string]string{"linux-6.12.44.tar.xz": a, "linux-6.12.45.tar.xz": strings.ToLower(b)} {
		if got, err := ListedSHA256(list, name); err != nil || got != want {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	for _, name := range []string{"linux-6.12.46.tar.xz", "linux-6.12.47.tar.xz", "linux-6.tar.xz"} {
		if _, err := ListedSHA256(list, name); !errors.Is(err, ErrNotListed) {
			t.Errorf("%s: err = %v, want ErrNotListed", name, err)
		}
	}
	dup := sumsFile(a+"  linux-6.12.44.tar.xz", strings.ToLower(b)+"  linux-6.12.44.tar.xz")
	if _, err := ListedSHA256(dup, "linux-6.12.44.tar.xz"); err == nil || !strings.Contains(err.Error(), "two different") {
		t.Errorf("conflicting entries: err = %v", err)
	}
}

func TestTarballVersionOfDebianSource(t *testing.T) {
	const tarball = "/usr/src/linux-source-6.1.tar.xz"
	testutil.RequireFile(t, tarball)
	v, err := TarballVersion(context.Background(), tarball)
	if err != nil {
		t.Fatal(err)
	}
	// The Debian package's upstream version is the tarball's version.
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "linux-source-6.1").Output()
	if err != nil {
		testutil.Missing(t, "dpkg-query: %v", err)
	}
	want, _, _ := strings.Cut(string(out), "-")
	if v != want {
		t.Errorf("TarballVersion = %q, dpkg says %q", v, want)
	}
}

func TestMirrorDirs(t *testing.T) {
	tests := []struct {
		url  string
		want []string
	}{
		{"https://cdn.kernel.org/pub/linux/kernel/v6.x/", []string{"https://cdn.kernel.org/pub/linux/kernel/v6.x/"}},
		{"https://cdn.kernel.org/pub/linux/kernel/v6.x", []string{"https://cdn.kernel.org/pub/linux/kernel/v6.x/"}},
		{"https://cdn.kernel.org/pub/linux/kernel", []string{"https://cdn.kernel.org/pub/linux/kernel/", "https://cdn.kernel.org/pub/linux/kernel/v6.x/"}},
		{"file:///srv/kernel/", []string{"file:///srv/kernel/", "file:///srv/kernel/v6.x/"}},
	}
	for _, tt := range tests {
		if got := MirrorDirs(tt.url, "6.12.44"); strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("MirrorDirs(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

// The original's KERNEL_SOURCE_URL has no /v6.x/: the version's directory
// is derived, with and without a pinned sha256, so a maintainer's old
// build.conf builds.
func TestSourceOriginalURLForm(t *testing.T) {
	ctx := context.Background()
	tarball := fakeSource(t, "linux-6.12.44", "6.12.44", "")
	srv := mirror(t, map[string][]byte{
		"linux-6.12.44.tar.xz": tarball,
		"sha256sums.asc":       sumsFile(sha(tarball) + "  linux-6.12.44.tar.xz"),
	})
	for _, c := range []struct{ name, url, pinned string }{
		{"listed", srv.URL + "/pub/linux/kernel", ""},
		{"trailing slash", srv.URL + "/pub/linux/kernel/", ""},
		{"pinned", srv.URL + "/pub/linux/kernel", sha(tarball)},
	} {
		t.Run(c.name, func(t *testing.T) {
			tree, err := Source(ctx, t.TempDir(), SourceOptions{Version: "6.12.44", URL: c.url, SHA256: c.pinned,
				Fetcher: download.New(download.Options{CacheDir: t.TempDir(), Retries: -1})})
			if err != nil {
				t.Fatal(err)
			}
			if v, err := TreeVersion(tree); err != nil || v != "6.12.44" {
				t.Fatalf("TreeVersion = %q, %v", v, err)
			}
		})
	}
	// Served by neither form: the error names both directories.
	_, err := Source(ctx, t.TempDir(), SourceOptions{Version: "6.12.45", URL: srv.URL + "/pub/linux/kernel",
		Fetcher: download.New(download.Options{CacheDir: t.TempDir(), Retries: -1})})
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/pub/linux/kernel/ nor "+srv.URL+"/pub/linux/kernel/v6.x/") {
		t.Errorf("err = %v, want one naming both directories", err)
	}
}

// A local mirror holding the tarball itself (no v6.x/) is used as given.
func TestSourceFlatFileMirror(t *testing.T) {
	dir := t.TempDir()
	tarball := fakeSource(t, "linux-6.12.44", "6.12.44", "")
	testutil.WriteFile(t, filepath.Join(dir, "linux-6.12.44.tar.xz"), string(tarball), 0o644)
	testutil.WriteFile(t, filepath.Join(dir, "sha256sums.asc"), string(sumsFile(sha(tarball)+"  linux-6.12.44.tar.xz")), 0o644)
	_, err := Source(context.Background(), t.TempDir(), SourceOptions{Version: "6.12.44", URL: "file://" + dir,
		Fetcher: download.New(download.Options{CacheDir: t.TempDir(), Retries: -1})})
	if err != nil {
		t.Fatal(err)
	}
}
