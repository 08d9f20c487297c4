package flist

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// blobFile returns the path of the dir-store blob holding the first block
// of the flist file at path p.
func blobFile(t *testing.T, fl, storeRoot, p string) string {
	t.Helper()
	r, err := Open(fl)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	in, err := r.LookupPath(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := r.Blocks(ctx, in.Ino)
	if err != nil || len(bs) == 0 {
		t.Fatalf("blocks of %s: %v, %v", p, bs, err)
	}
	h := store.Hex(bs[0].ID[:])
	return filepath.Join(storeRoot, h[:2], h)
}

func TestVerify(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	work := t.TempDir()
	storeRoot := filepath.Join(work, "store")
	fl := filepath.Join(work, "v.fl")
	if _, err := Pack(ctx, src, fl, PackOptions{Store: store.NewDir(storeRoot)}); err != nil {
		t.Fatal(err)
	}
	for _, deep := range []bool{false, true} {
		rep, err := Verify(ctx, fl, VerifyOptions{Deep: deep, Routes: localRoutes})
		if err != nil {
			t.Fatalf("deep=%v: %v", deep, err)
		}
		if rep.Blobs != distinctBlobs(t, fl) || rep.Files != 11 || !rep.OK() {
			t.Errorf("deep=%v: %s", deep, rep)
		}
	}

	// A flipped bit is only seen by the deep check.
	corrupt := blobFile(t, fl, storeRoot, "/hello.txt")
	b, err := os.ReadFile(corrupt)
	if err != nil {
		t.Fatal(err)
	}
	b[3] ^= 0x10
	if err := os.WriteFile(corrupt, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(ctx, fl, VerifyOptions{Routes: localRoutes}); err != nil || !rep.OK() {
		t.Errorf("shallow check after corruption: %s, %v", rep, err)
	}
	rep, err := Verify(ctx, fl, VerifyOptions{Deep: true, Routes: localRoutes})
	if !errors.Is(err, ErrVerify) || len(rep.Corrupt) != 1 || !strings.Contains(rep.Corrupt[0], "/hello.txt") {
		t.Errorf("deep check after corruption: %+v, %v", rep, err)
	}

	// A missing blob is seen by both and named by its file.
	if err := os.Remove(blobFile(t, fl, storeRoot, "/big/compressible.txt")); err != nil {
		t.Fatal(err)
	}
	for _, deep := range []bool{false, true} {
		rep, err := Verify(ctx, fl, VerifyOptions{Deep: deep, Routes: localRoutes})
		if !errors.Is(err, ErrVerify) || len(rep.Missing) != 1 || !strings.Contains(rep.Missing[0], "/big/compressible.txt") {
			t.Errorf("deep=%v after removal: %+v, %v", deep, rep, err)
		}
		if !strings.Contains(err.Error(), "/big/compressible.txt") {
			t.Errorf("deep=%v: error does not name the file: %v", deep, err)
		}
	}
}

// TestVerifyInconsistent: a file whose blocks do not cover its size (what
// rfs leaves after a failed upload) is reported.
func TestVerifyInconsistent(t *testing.T) {
	fl := filepath.Join(t.TempDir(), "partial.fl")
	w, err := Create(fl)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []Inode{
		{Name: "/", Mode: uint32(TypeDir) | 0o755},
		{Parent: 1, Name: "Boolean.pm", Size: 1009, Mode: uint32(TypeRegular) | 0o644},
	} {
		if _, err := w.AddInode(in); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.AddRoute(store.Route{Start: 0, End: 255, URL: "dir://" + t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, fl, VerifyOptions{Routes: localRoutes})
	if !errors.Is(err, ErrVerify) || len(rep.Inconsistent) != 1 || !strings.Contains(rep.Inconsistent[0], "Boolean.pm") {
		t.Errorf("Verify = %+v, %v", rep, err)
	}
	if err := Unpack(ctx, fl, t.TempDir(), UnpackOptions{Routes: localRoutes}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Unpack of a partial flist = %v, want ErrCorrupt", err)
	}
}
