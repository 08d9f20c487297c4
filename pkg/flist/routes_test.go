package flist

import (
	"bytes"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// copyFlist copies a flist into a new temporary directory with the given
// mtime, so a test can check the edit keeps it.
func copyFlist(t *testing.T, src string, mtime time.Time) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	fl := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(fl, b, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(fl, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return fl
}

func listing(t *testing.T, routes []store.Route) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteRoutes(&buf, routes); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// onlyFile fails when anything but the flist is left in its directory
// (temporary copies, journals).
func onlyFile(t *testing.T, fl string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Dir(fl))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != filepath.Base(fl) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestEditRoutesHTTPSRow is what patch-stores.sh was for: an flist packed to
// a dir store gets an HTTP row for the same blobs, loses the dir row, and
// still unpacks, now through the web server alone. The entries, the file's
// mode and its mtime do not change.
func TestEditRoutesHTTPSRow(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	storeRoot := t.TempDir()
	packed := filepath.Join(t.TempDir(), "edit.fl")
	if _, err := Pack(ctx, src, packed, PackOptions{Store: store.NewDir(storeRoot)}); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	fl := copyFlist(t, packed, mtime)
	srv := httptest.NewServer(http.StripPrefix("/blobs", http.FileServer(http.Dir(storeRoot))))
	defer srv.Close()

	dirRoute := store.Route{Start: 0, End: 255, URL: "dir://" + storeRoot}
	httpRoute := store.Route{Start: 0, End: 255, URL: srv.URL + "/blobs"}
	got, err := AddRoutes(ctx, fl, []store.Route{httpRoute})
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.Route{dirRoute, httpRoute}; !slices.Equal(got, want) || !slices.Equal(routesOf(t, fl), want) {
		t.Fatalf("routes after add: returned %v, in the file %v, want %v", got, routesOf(t, fl), want)
	}
	want := "routes:\n\trange:[0-255] store:dir://" + storeRoot + "\n\trange:[0-255] store:" + srv.URL + "/blobs\n"
	if s := listing(t, got); s != want {
		t.Errorf("listing:\n%s\nwant:\n%s", s, want)
	}
	if _, err := DeleteRoutes(ctx, fl, "dir://"+storeRoot); err != nil {
		t.Fatal(err)
	}
	if r := routesOf(t, fl); !slices.Equal(r, []store.Route{httpRoute}) {
		t.Fatalf("routes after delete: %v", r)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := Unpack(ctx, fl, dst, UnpackOptions{Routes: localRoutes}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
	if treeOf(t, fl) != treeOf(t, packed) {
		t.Error("the entries changed")
	}
	st, err := os.Stat(fl)
	if err != nil {
		t.Fatal(err)
	}
	if !st.ModTime().Equal(mtime) || st.Mode().Perm() != 0o640 {
		t.Errorf("mtime %v mode %v, want %v and 0640 kept", st.ModTime(), st.Mode().Perm(), mtime)
	}
	onlyFile(t, fl)
}

// Rotating read credentials on an flist rfs itself wrote: the route holds
// the new secret (nodes need it), the listing never shows it, and the
// entries and blocks are untouched.
func TestSetRoutesRotatesCredentials(t *testing.T) {
	orig := filepath.Join("testdata", "alpine-latest.fl")
	fl := copyFlist(t, orig, time.Now())
	const secret = "n3w-r34d-s3cr3t"
	route := store.Route{Start: 0, End: 255, URL: "s3://readkey:" + secret + "@gw.example.org:443/blobs?region=garage"}
	got, err := SetRoutes(ctx, fl, []store.Route{route})
	if err != nil {
		t.Fatal(err)
	}
	if r := routesOf(t, fl); !slices.Equal(r, []store.Route{route}) || !slices.Equal(got, r) {
		t.Errorf("routes %v, returned %v, want %v", r, got, route)
	}
	s := listing(t, got)
	if want := "routes:\n\trange:[0-255] store:s3://readkey:***@gw.example.org:443/blobs?region=garage\n"; s != want {
		t.Errorf("listing %q, want %q", s, want)
	}
	if strings.Contains(s, secret) {
		t.Errorf("the listing shows the secret: %s", s)
	}
	if treeOf(t, fl) != treeOf(t, orig) || distinctBlobs(t, fl) != distinctBlobs(t, orig) {
		t.Error("entries or blocks changed")
	}
	// A masked URL from the listing deletes the route it shows, after a
	// second route took over its range.
	if _, err := AddRoutes(ctx, fl, []store.Route{{Start: 0, End: 255, URL: "https://mirror.example.org/blobs"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := DeleteRoutes(ctx, fl, "s3://readkey:***@gw.example.org:443/blobs?region=garage"); err != nil {
		t.Fatal(err)
	}
	if r := routesOf(t, fl); len(r) != 1 || r[0].URL != "https://mirror.example.org/blobs" {
		t.Errorf("routes after deleting the masked one: %v", r)
	}
	onlyFile(t, fl)
}

// An edit that is refused writes nothing: the file stays byte for byte,
// and no error shows a secret.
func TestEditRoutesRefused(t *testing.T) {
	const secret = "t0p-s3cr3t-v4lue"
	half := store.Route{Start: 0, End: 0x7f, URL: "https://mirror.example.org/blobs"}
	tests := []struct {
		name string
		edit func(fl string) error
		want string
	}{
		{"gap", func(fl string) error {
			_, err := SetRoutes(ctx, fl, []store.Route{half})
			return err
		}, "no route would cover the blocks whose id starts in 80-ff"},
		{"no routes", func(fl string) error {
			_, err := SetRoutes(ctx, fl, nil)
			return err
		}, "no route would cover the blocks whose id starts in 00-ff"},
		{"duplicate", func(fl string) error {
			_, err := AddRoutes(ctx, fl, []store.Route{{Start: 0, End: 255, URL: "dir:///tmp/store0"}})
			return err
		}, "already has the route range:[0-255] store:dir:///tmp/store0"},
		{"twice in one set", func(fl string) error {
			r := store.Route{Start: 0, End: 255, URL: "s3://k:" + secret + "@h:9000/b"}
			_, err := SetRoutes(ctx, fl, []store.Route{r, r})
			return err
		}, "route range:[0-255] store:s3://k:***@h:9000/b is given twice"},
		{"unknown scheme", func(fl string) error {
			_, err := SetRoutes(ctx, fl, []store.Route{{Start: 0, End: 255, URL: "ftp://u:" + secret + "@h/blobs"}})
			return err
		}, "unknown scheme"},
		{"s3 without port", func(fl string) error {
			_, err := SetRoutes(ctx, fl, []store.Route{{Start: 0, End: 255, URL: "s3://k:" + secret + "@h/b"}})
			return err
		}, "needs HOST:PORT"},
		{"delete nothing", func(fl string) error {
			_, err := DeleteRoutes(ctx, fl, "s3://k:"+secret+"@h:9000/b")
			return err
		}, "no route with the store s3://k:***@h:9000/b"},
	}
	orig := filepath.Join("testdata", "alpine-latest.fl")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := copyFlist(t, orig, time.Now())
			before, _ := os.ReadFile(fl)
			err := tt.edit(fl)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the secret: %v", err)
			}
			if after, _ := os.ReadFile(fl); !bytes.Equal(before, after) {
				t.Error("the flist changed")
			}
			onlyFile(t, fl)
		})
	}
}

// The flist is untrusted: one carrying a trigger (rfs writes none) could
// run SQL when its routes change, so it is refused.
func TestEditRoutesRefusesTriggers(t *testing.T) {
	fl := copyFlist(t, filepath.Join("testdata", "hello-world-latest.fl"), time.Now())
	db, err := sql.Open("sqlite", "file:"+fl)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`create trigger wipe after delete on route begin delete from inode; end`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = SetRoutes(ctx, fl, []store.Route{{Start: 0, End: 255, URL: "dir:///tmp/store1"}})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "trigger") {
		t.Errorf("error %v, want a refused trigger", err)
	}
	if r := routesOf(t, fl); len(r) != 1 || r[0].URL != "dir:///tmp/store0" {
		t.Errorf("routes changed: %v", r)
	}
	onlyFile(t, fl)
}

// A symlinked flist is edited where it points; the link stays a link. A
// WAL-mode flist (rfs v2.0.0-v2.0.2) comes out in journal mode DELETE with
// no -wal or -shm file beside it.
func TestEditRoutesSymlinkAndWAL(t *testing.T) {
	fl := copyFlist(t, filepath.Join("testdata", "hello-world-latest.fl"), time.Now())
	db, err := sql.Open("sqlite", "file:"+fl)
	if err != nil {
		t.Fatal(err)
	}
	var mode string
	err = db.QueryRow(`pragma journal_mode=wal`).Scan(&mode)
	db.Close()
	if err != nil || mode != "wal" {
		t.Fatalf("convert to WAL: %v %q", err, mode)
	}
	link := filepath.Join(t.TempDir(), "latest.fl")
	if err := os.Symlink(fl, link); err != nil {
		t.Fatal(err)
	}
	route := store.Route{Start: 0, End: 255, URL: "dir:///srv/store"}
	if _, err := SetRoutes(ctx, link, []store.Route{route}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v", err)
	}
	if r := routesOf(t, fl); !slices.Equal(r, []store.Route{route}) {
		t.Errorf("routes %v", r)
	}
	head, _ := os.ReadFile(fl)
	if len(head) < 20 || head[18] != 1 || head[19] != 1 {
		t.Errorf("not in journal mode DELETE (header bytes 18/19)")
	}
	onlyFile(t, fl)
}
