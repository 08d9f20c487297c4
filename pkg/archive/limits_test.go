package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// sparseTarball makes a gzip'd GNU tar of one sparse file of size bytes
// with GNU tar itself: a few hundred bytes that expand to size.
func sparseTarball(t *testing.T, size int64) string {
	t.Helper()
	tarTool := testutil.RequireTool(t, "tar")
	testutil.RequireTool(t, "gzip")
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "hole"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), size-3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	tarball := filepath.Join(t.TempDir(), "sparse.tar.gz")
	if out, err := exec.Command(tarTool, "--sparse", "-C", src, "-czf", tarball, "hole").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	return tarball
}

// TestExtractLimits is item 9: an archive that expands beyond the total
// size or entry count fails before the excess is written, with an error
// naming the limit and the entry.
func TestExtractLimits(t *testing.T) {
	t.Run("sparse file beyond the default total", func(t *testing.T) {
		tarball := sparseTarball(t, DefaultMaxBytes+1)
		if st, _ := os.Stat(tarball); st.Size() > 4096 {
			t.Fatalf("the sparse tarball is %d bytes", st.Size())
		}
		root := t.TempDir()
		err := ExtractFile(context.Background(), tarball, root, Options{})
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "hole") {
			t.Fatalf("ExtractFile = %v, want ErrLimit naming the entry", err)
		}
		if _, err := os.Lstat(filepath.Join(root, "hole")); err == nil {
			t.Error("the file over the limit was created")
		}
	})
	t.Run("sparse file beyond a lowered total", func(t *testing.T) {
		tarball := sparseTarball(t, 300<<20)
		err := ExtractFile(context.Background(), tarball, t.TempDir(), Options{MaxBytes: 100 << 20})
		if !errors.Is(err, ErrLimit) {
			t.Fatalf("ExtractFile = %v, want ErrLimit", err)
		}
	})
	t.Run("a raised total lets it through", func(t *testing.T) {
		tarball := sparseTarball(t, 3<<20)
		root := t.TempDir()
		if err := ExtractFile(context.Background(), tarball, root, Options{MaxBytes: 4 << 20}); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(filepath.Join(root, "hole")); err != nil || st.Size() != 3<<20 {
			t.Errorf("hole: %v %v", st, err)
		}
	})
	t.Run("too many entries", func(t *testing.T) {
		var entries []entry
		for i := range 20 {
			entries = append(entries, file(fmt.Sprintf("f%02d", i), "x"))
		}
		err := ExtractTar(context.Background(), bytes.NewReader(makeTar(t, entries)), t.TempDir(), Options{MaxEntries: 10})
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "f10") {
			t.Fatalf("ExtractTar = %v, want ErrLimit at f10", err)
		}
		if err := ExtractTar(context.Background(), bytes.NewReader(makeTar(t, entries)), t.TempDir(), Options{MaxEntries: 20}); err != nil {
			t.Fatalf("20 entries with MaxEntries 20: %v", err)
		}
	})
}
