package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/compression"
)

var mtime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

// makeTree builds a directory with the kinds of entry a root filesystem has.
func makeTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "top")
	mk := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mk(os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	mk(os.MkdirAll(filepath.Join(src, "etc/apk"), 0o755))
	mk(os.MkdirAll(filepath.Join(src, "ro"), 0o755))
	mk(os.WriteFile(filepath.Join(src, "bin/busybox"), bytes.Repeat([]byte("ELF"), 10000), 0o755))
	mk(os.WriteFile(filepath.Join(src, "etc/shadow"), []byte("root:*::0:::::\n"), 0o640))
	mk(os.WriteFile(filepath.Join(src, "bin/su"), []byte("suid"), 0o755))
	mk(os.Chmod(filepath.Join(src, "bin/su"), 0o4755))
	mk(os.Symlink("/bin/busybox", filepath.Join(src, "bin/sh")))
	mk(os.Symlink("../bin/busybox", filepath.Join(src, "etc/rel")))
	mk(os.Link(filepath.Join(src, "bin/busybox"), filepath.Join(src, "bin/hard")))
	mk(syscall.Mkfifo(filepath.Join(src, "etc/fifo"), 0o600))
	mk(os.WriteFile(filepath.Join(src, "ro/file"), []byte("x"), 0o444))
	mk(os.Chmod(filepath.Join(src, "ro"), 0o555))
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "ro"), 0o755) })
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ts := unix.NsecToTimespec(mtime.UnixNano())
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
	mk(err)
	return src
}

// compareTrees checks that got holds the same entries as want with the same
// type, permission bits, content, link target and mtime, and that hard links
// stay hard links.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		if rel == "." {
			return nil // the root's metadata is the stripped top entry's
		}
		q := filepath.Join(got, rel)
		ws, _ := os.Lstat(p)
		gs, err := os.Lstat(q)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		n++
		if ws.Mode() != gs.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gs.Mode(), ws.Mode())
		}
		if !ws.ModTime().Equal(gs.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, gs.ModTime(), ws.ModTime())
		}
		switch {
		case ws.Mode()&fs.ModeSymlink != 0:
			wl, _ := os.Readlink(p)
			gl, _ := os.Readlink(q)
			if wl != gl {
				t.Errorf("%s -> %q, want %q", rel, gl, wl)
			}
		case ws.Mode().IsRegular():
			wb, _ := os.ReadFile(p)
			gb, _ := os.ReadFile(q)
			if !bytes.Equal(wb, gb) {
				t.Errorf("%s: content differs", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("compared only %d entries", n)
	}
	a, _ := os.Stat(filepath.Join(got, "bin/busybox"))
	b, _ := os.Stat(filepath.Join(got, "bin/hard"))
	if !os.SameFile(a, b) {
		t.Error("bin/hard is not a hard link of bin/busybox")
	}
}

// gnuTar archives src with GNU tar, the independent writer.
func gnuTar(t *testing.T, src string) []byte {
	t.Helper()
	testutil.RequireTool(t, "tar")
	out, err := exec.Command("tar", "-C", filepath.Dir(src), "-cf", "-", filepath.Base(src)).Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compress(t *testing.T, tool string, data []byte) []byte {
	t.Helper()
	if tool == "" {
		return data
	}
	testutil.RequireTool(t, tool)
	cmd := exec.Command(tool, "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return out
}

func TestExtractFormats(t *testing.T) {
	src := makeTree(t)
	plain := gnuTar(t, src)
	tests := []struct {
		tool   string
		pureGo bool
	}{{"", false}, {"gzip", false}, {"xz", false}, {"xz", true}, {"zstd", false}, {"bzip2", false}}
	for _, tt := range tests {
		name := tt.tool
		if tt.pureGo {
			name += "-pure-go"
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.tar")
			if err := os.WriteFile(path, compress(t, tt.tool, plain), 0o644); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(t.TempDir(), "root")
			if err := ExtractFile(context.Background(), path, root, Options{StripComponents: 1, pureGo: tt.pureGo}); err != nil {
				t.Fatal(err)
			}
			compareTrees(t, src, root)
			// Idempotent: extracting again over the result works.
			if err := ExtractFile(context.Background(), path, root, Options{StripComponents: 1, pureGo: tt.pureGo}); err != nil {
				t.Fatalf("second extraction: %v", err)
			}
			compareTrees(t, src, root)
		})
	}
}

func TestTruncatedArchiveFails(t *testing.T) {
	plain := gnuTar(t, makeTree(t))
	for _, tt := range []struct {
		tool   string
		pureGo bool
	}{{"gzip", false}, {"xz", false}, {"xz", true}, {"zstd", false}} {
		t.Run(tt.tool, func(t *testing.T) {
			data := compress(t, tt.tool, plain)
			// Cut only the compressed trailer: the tar entries all decode.
			cut := data[:len(data)-6]
			err := ExtractTar(context.Background(), bytes.NewReader(cut), t.TempDir(), Options{pureGo: tt.pureGo})
			if err == nil {
				t.Fatal("truncated archive extracted without error")
			}
		})
	}
}

func TestStripComponentsAndDevices(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "top/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "top/dev/console", Typeflag: tar.TypeChar, Mode: 0o600, Devmajor: 5, Devminor: 1},
		{Name: "top/dev/sda", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 8},
		{Name: "top/sub/file", Typeflag: tar.TypeReg, Mode: 0o600, Size: 2},
		{Name: "top/sub/link", Typeflag: tar.TypeLink, Linkname: "top/sub/file"},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hi"))
		}
	}
	tw.Close()
	root := t.TempDir()
	log, hook := test.NewNullLogger()
	if err := ExtractTar(context.Background(), &buf, root, Options{StripComponents: 1, Log: log}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "dev/console")); err == nil {
		t.Error("device node was created")
	}
	a, _ := os.Stat(filepath.Join(root, "sub/file"))
	b, _ := os.Stat(filepath.Join(root, "sub/link"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("stripped hard link not kept")
	}
	found := false
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.InfoLevel && strings.Contains(e.Message, "skipped 2 device nodes") {
			found = true
		}
	}
	if !found {
		t.Error("skipped device nodes not counted in the log")
	}
}

func TestCancelledExtraction(t *testing.T) {
	plain := gnuTar(t, makeTree(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := ExtractTar(ctx, bytes.NewReader(compress(t, "xz", plain)), t.TempDir(), Options{})
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("err = %v, want context canceled", err)
	}
}

const linuxSource = "/usr/src/linux-source-6.1.tar.xz"

// TestExtractLinuxSource extracts Debian's 138 MB kernel source tarball, the
// largest archive the build handles.
func TestExtractLinuxSource(t *testing.T) {
	testutil.Slow(t)
	testutil.RequireFile(t, linuxSource)
	root := t.TempDir()
	if err := ExtractFile(context.Background(), linuxSource, root, Options{StripComponents: 1}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"Makefile", "arch/x86/Kconfig", "scripts/kconfig/conf.c"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Error(err)
		}
	}
	// The tree has relative symlinks (dt-bindings); they must survive.
	links := 0
	filepath.WalkDir(filepath.Join(root, "scripts"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			links++
		}
		return nil
	})
	if links == 0 {
		t.Error("no symlinks under scripts/")
	}
}

// BenchmarkExtractLinuxSource measures the kernel source extraction with the
// xz program and with the pure-Go decoder.
func BenchmarkExtractLinuxSource(b *testing.B) {
	testutil.RequireFile(b, linuxSource)
	for _, pure := range []bool{false, true} {
		name := "xz-program"
		if pure {
			name = "pure-go"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				root := b.TempDir()
				if err := ExtractFile(context.Background(), linuxSource, root, Options{StripComponents: 1, pureGo: pure}); err != nil {
					b.Fatal(err)
				}
				os.RemoveAll(root)
			}
		})
	}
}

func BenchmarkDecompressOnly(b *testing.B) {
	testutil.RequireFile(b, linuxSource)
	for _, pure := range []bool{false, true} {
		b.Run(map[bool]string{false: "xz-program", true: "pure-go"}[pure], func(b *testing.B) {
			for b.Loop() {
				f, _ := os.Open(linuxSource)
				rc, err := compression.NewReader(context.Background(), f, compression.Options{XZProgram: !pure})
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, rc)
				rc.Close()
				f.Close()
				b.SetBytes(n)
			}
		})
	}
}

func TestFindReadsOneEntry(t *testing.T) {
	tarTool := testutil.RequireTool(t, "tar")
	testutil.RequireTool(t, "xz")
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "top", "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "top", "sub", "Makefile"), []byte("nested\n"), 0o644)
	os.WriteFile(filepath.Join(src, "top", "Makefile"), []byte("VERSION = 6\n"), 0o644)
	tarball := filepath.Join(t.TempDir(), "t.tar.xz")
	if out, err := exec.Command(tarTool, "-C", src, "-cJf", tarball, "top").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	isTopMakefile := func(n string) bool {
		return strings.Count(strings.TrimPrefix(n, "./"), "/") == 1 && strings.HasSuffix(n, "/Makefile")
	}
	name, data, err := Find(context.Background(), tarball, isTopMakefile, 1<<20)
	if err != nil || name != "top/Makefile" || string(data) != "VERSION = 6\n" {
		t.Fatalf("Find = %q %q %v", name, data, err)
	}
	if _, _, err := Find(context.Background(), tarball, func(string) bool { return false }, 1<<20); !errors.Is(err, ErrNotFound) {
		t.Errorf("no match: %v", err)
	}
	if _, _, err := Find(context.Background(), tarball, isTopMakefile, 3); err == nil {
		t.Error("an entry over max was read")
	}
}
