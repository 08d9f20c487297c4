package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/s3test"
)

// objectStores returns a dir store and an S3 store on versitygw, both with
// a small part size so an 11 MiB object is a real multipart upload.
func objectStores(t *testing.T) map[string]Objects {
	t.Helper()
	srv := s3test.StartWithT(t, s3test.Options{Metadata: true})
	if err := srv.CreateBucket(context.Background(), "cache"); err != nil {
		t.Fatal(err)
	}
	s3, err := OpenObjects(srv.URL("cache", "team/artifacts"), ObjectOptions{PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := OpenObjects("dir://"+t.TempDir(), ObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Objects{"dir": dir, "s3": s3}
}

func TestObjects(t *testing.T) {
	ctx := context.Background()
	big := make([]byte, 11<<20+123)
	rand.Read(big)
	for kind, s := range objectStores(t) {
		t.Run(kind, func(t *testing.T) {
			if _, err := s.Stat(ctx, "kernel_modules/k1.json"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Stat of a missing object = %v, want ErrNotFound", err)
			}
			if _, _, err := s.Get(ctx, "kernel_modules/k1.json"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get of a missing object = %v, want ErrNotFound", err)
			}
			if err := s.Put(ctx, "kernel_modules/k1.json", strings.NewReader("{}"), 2); err != nil {
				t.Fatal(err)
			}
			// Known size, larger than a part: multipart too.
			if err := s.Put(ctx, "data/big2.tar.zst", bytes.NewReader(big), int64(len(big))); err != nil {
				t.Fatal(err)
			}
			// Unknown size: streamed in parts.
			if err := s.Put(ctx, "data/big.tar.zst", onlyReader{bytes.NewReader(big)}, -1); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"data/big.tar.zst", "data/big2.tar.zst"} {
				r, info, err := s.Get(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, big) || info.Size != int64(len(big)) {
					t.Fatalf("Get %s: %d bytes (info %d), %v", name, len(got), info.Size, err)
				}
			}
			// Replacing an object.
			if err := s.Put(ctx, "kernel_modules/k1.json", strings.NewReader(`{"v":2}`), 7); err != nil {
				t.Fatal(err)
			}
			if info, err := s.Stat(ctx, "kernel_modules/k1.json"); err != nil || info.Size != 7 || info.Modified.IsZero() {
				t.Fatalf("Stat = %+v, %v", info, err)
			}
			list, err := s.List(ctx, "data/")
			if err != nil || len(list) != 2 || list[0].Name != "data/big.tar.zst" || list[1].Name != "data/big2.tar.zst" {
				t.Fatalf("List data/ = %+v, %v", list, err)
			}
			all, err := s.List(ctx, "")
			if err != nil || len(all) != 3 {
				t.Fatalf("List all = %+v, %v", all, err)
			}
			if l, err := s.List(ctx, "kernel_modules/k"); err != nil || len(l) != 1 {
				t.Fatalf("List by name prefix = %+v, %v", l, err)
			}
			if l, err := s.List(ctx, "nothing/"); err != nil || len(l) != 0 {
				t.Fatalf("List of an empty prefix = %+v, %v", l, err)
			}
			if err := s.Delete(ctx, "data/big.tar.zst"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "data/big.tar.zst"); err != nil {
				t.Fatalf("Delete of a missing object: %v", err)
			}
			if _, err := s.Stat(ctx, "data/big.tar.zst"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Stat after Delete = %v", err)
			}
			for _, bad := range []string{"", "/abs", "a/../b", "../x", "a//b", ".hidden", "a/.tmp-1", "sp ace"} {
				if err := s.Put(ctx, bad, strings.NewReader("x"), 1); !errors.Is(err, ErrInvalidURL) {
					t.Errorf("Put %q = %v, want ErrInvalidURL", bad, err)
				}
			}
			if strings.Contains(s.String(), "secret") {
				t.Errorf("String() holds the secret: %s", s)
			}
		})
	}
}

// onlyReader hides Seek and Len, so the size cannot be guessed.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// A short reader must not leave a truncated object under the name.
func TestDirObjectsPutShortReader(t *testing.T) {
	ctx := context.Background()
	s := NewDirObjects(t.TempDir())
	if err := s.Put(ctx, "a/b", strings.NewReader("abc"), 10); err == nil {
		t.Fatal("Put with fewer bytes than size succeeded")
	}
	if _, err := s.Stat(ctx, "a/b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a partial object is visible: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.root, "a"))
	if len(ents) != 0 {
		t.Fatalf("leftovers: %v", ents)
	}
}

// A symbolic link planted in the store cannot lead a write or a read
// outside it.
func TestDirObjectsSymlinkEscape(t *testing.T) {
	ctx := context.Background()
	root, outside := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o644)
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	s := NewDirObjects(root)
	if err := s.Put(ctx, "link/new", strings.NewReader("x"), 1); err == nil {
		t.Error("Put through a symlink leading outside succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Error("a file was written outside the store")
	}
	if _, _, err := s.Get(ctx, "link/secret"); err == nil {
		t.Error("Get through a symlink leading outside succeeded")
	}
	if err := s.Delete(ctx, "link/secret"); err == nil {
		if _, serr := os.Stat(filepath.Join(outside, "secret")); serr != nil {
			t.Error("Delete removed a file outside the store")
		}
	}
}

func TestOpenObjectsErrors(t *testing.T) {
	for _, u := range []string{"dir://relative", "http://h:1/b", "nothing", "s3://k:topsecret@h/b"} {
		_, err := OpenObjects(u, ObjectOptions{})
		if err == nil {
			t.Errorf("OpenObjects(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error holds the secret: %v", err)
		}
	}
}
