package initramfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestComparePathsParentsFirst(t *testing.T) {
	// Byte order would put "a-b" and "a.b" between "a" and "a/b".
	names := []string{"a/b/c", "a.b", "b", "a-b", "a/b", ".", "a", "a/a", "a-b/x"}
	slices.SortFunc(names, comparePaths)
	want := []string{".", "a", "a/a", "a/b", "a/b/c", "a-b", "a-b/x", "a.b", "b"}
	if !slices.Equal(names, want) {
		t.Errorf("sorted %q, want %q", names, want)
	}
}

func TestCopyBodyDetectsChangedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{4, 6} { // grew, shrank since it was planned
		if err := copyBody(io.Discard, p, size); !errors.Is(err, ErrChanged) {
			t.Errorf("planned size %d for 5 bytes: %v, want ErrChanged", size, err)
		}
	}
	if err := copyBody(io.Discard, p, 5); err != nil {
		t.Errorf("unchanged file: %v", err)
	}
}

func TestXZArgsIndependentOfThreads(t *testing.T) {
	a := xzArgs(100<<20, Options{Threads: 1})
	b := xzArgs(100<<20, Options{Threads: 8})
	differ := 0
	for i := range a {
		if a[i] != b[i] {
			differ++
		}
	}
	if differ != 1 || !slices.Contains(a, "--threads=+1") || !slices.Contains(a, "--block-size=52428800") ||
		!slices.Contains(a, "--lzma2=preset=9,dict=67108864") {
		t.Errorf("1 thread: %q\n8 threads: %q", a, b)
	}
	if small := xzArgs(100, Options{}); !slices.Contains(small, "--block-size=1048576") || !slices.Contains(small, "--lzma2=preset=9,dict=1048576") {
		t.Errorf("small archive: %q", small)
	}
}

func TestLayoutEvenBlocksOfAtMost100MiB(t *testing.T) {
	const mib = 1 << 20
	for size, want := range map[int64]int64{1: 1, mib: 1, mib + 1: 2, 78 * mib: 2, 200 * mib: 2, 200*mib + 1: 4, 400 * mib: 4, 401 * mib: 6} {
		if _, got, _ := layout(size, Options{}); got != want {
			t.Errorf("%d bytes: %d blocks, want %d", size, got, want)
		}
	}
	if _, got, _ := layout(400*mib, Options{Blocks: 3}); got != 3 {
		t.Errorf("Options.Blocks 3 gave %d", got)
	}
}
