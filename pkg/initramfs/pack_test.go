package initramfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
)

var backends = []initramfs.Compression{initramfs.CompressionXZ, initramfs.CompressionGo}

func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		testutil.RequireTool(t, n)
	}
}

// TestPackReadByGNU packs a tree with each backend and reads the result with
// the independent tools: xz -t and xz -lvv for the container, GNU cpio -itv
// for every header and cpio -id for the contents.
func TestPackReadByGNU(t *testing.T) {
	requireTools(t, "xz", "cpio")
	files := rootfs()
	root := makeTree(t, files)
	for _, c := range backends {
		t.Run(string(c), func(t *testing.T) {
			out, st := pack(t, root, initramfs.Options{Compression: c, SourceDateEpoch: epoch})
			if st.Backend != c {
				t.Errorf("backend %s ran, asked for %s", st.Backend, c)
			}
			testutil.Run(t, "", nil, "xz", "-t", out)
			info := testutil.Run(t, "", nil, "xz", "-lvv", out)
			if !regexp.MustCompile(`(?m)^\s+Check:\s+CRC32$`).MatchString(info) {
				t.Errorf("xz -lvv does not report a CRC32 check:\n%s", info)
			}
			if c == initramfs.CompressionXZ && !regexp.MustCompile(fmt.Sprintf(`(?m)^\s+Blocks:\s+%d$`, st.Blocks)).MatchString(info) {
				t.Errorf("Stats.Blocks is %d, xz -lvv says:\n%s", st.Blocks, info)
			}
			cpioData := []byte(testutil.Run(t, "", nil, "xz", "-dc", out))
			if int64(len(cpioData)) != st.Uncompressed {
				t.Errorf("xz -dc gives %d bytes, Stats.Uncompressed is %d", len(cpioData), st.Uncompressed)
			}
			checkGNUListing(t, testutil.Run(t, "", cpioData, "cpio", "-itvn", "--quiet"), files)
			dir := t.TempDir()
			testutil.Run(t, dir, cpioData, "cpio", "-id", "--quiet", "--no-absolute-filenames", "-f", "dev/*")
			compareTrees(t, root, dir, files)
		})
	}
}

// checkGNUListing checks the cpio -itvn listing: the tree's entries plus
// the device nodes, parents first, owner 0:0, mtime SOURCE_DATE_EPOCH.
func checkGNUListing(t *testing.T, listing string, files []file) {
	t.Helper()
	want := map[string]string{".": "d", "dev": "d", "dev/console": "c 5, 1", "dev/null": "c 1, 3"}
	for _, f := range files {
		switch {
		case f.dir:
			want[f.name] = "d"
		case f.sym:
			want[f.name] = "l " + f.data
		default:
			want[f.name] = "-"
		}
	}
	date := time.Unix(*epoch, 0).Format("Jan _2  2006")
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 9 {
			t.Fatalf("short cpio -itv line %q", line)
		}
		mode, owner := fields[0], fields[2]+":"+fields[3]
		rest := fields[4:]
		got := mode[:1]
		if got == "c" {
			got, rest = fmt.Sprintf("c %s %s", rest[0], rest[1]), rest[1:]
		}
		name := rest[4]
		if got == "l" {
			got += " " + rest[6]
		}
		if owner != "0:0" {
			t.Errorf("%s: owner %s, want 0:0", name, owner)
		}
		if d := strings.Join(rest[1:4], " "); !strings.Contains(line, date) {
			t.Errorf("%s: date %q, want %q", name, d, date)
		}
		if w, ok := want[name]; !ok || w != got {
			t.Errorf("%s: listed as %q, want %q", name, got, w)
		}
		if parent := path.Dir(name); parent != "." && !seen[parent] {
			t.Errorf("%s listed before its directory %s", name, parent)
		}
		seen[name] = true
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s missing from the archive", name)
		}
	}
}

// compareTrees compares what cpio -id extracted with the source tree.
func compareTrees(t *testing.T, src, dst string, files []file) {
	t.Helper()
	for _, f := range files {
		s, d := filepath.Join(src, f.name), filepath.Join(dst, f.name)
		sfi, err1 := os.Lstat(s)
		dfi, err2 := os.Lstat(d)
		if err1 != nil || err2 != nil {
			t.Errorf("%s: %v %v", f.name, err1, err2)
			continue
		}
		if sfi.Mode() != dfi.Mode() {
			t.Errorf("%s: extracted mode %v, source %v", f.name, dfi.Mode(), sfi.Mode())
		}
		switch {
		case f.sym:
			if got, _ := os.Readlink(d); got != f.data {
				t.Errorf("%s -> %q, want %q", f.name, got, f.data)
			}
		case f.link != "":
			if other, err := os.Stat(filepath.Join(dst, f.link)); err != nil || !os.SameFile(dfi, other) {
				t.Errorf("%s is not a hard link of %s", f.name, f.link)
			}
			fallthrough
		case !f.dir:
			if !bytes.Equal(readFile(t, s), readFile(t, d)) {
				t.Errorf("%s: extracted content differs", f.name)
			}
		}
	}
}

// TestPackHardLinkStoredOnce checks that the data of a file with two names
// is in the archive once: the second name has size 0 and the same inode.
func TestPackHardLinkStoredOnce(t *testing.T) {
	requireTools(t, "xz", "cpio")
	big := strings.Repeat("hard link body ", 1000)
	root := makeTree(t, []file{{name: "a", mode: 0o644, data: big}, {name: "b", link: "a"}})
	out, st := pack(t, root, initramfs.Options{SourceDateEpoch: epoch})
	if st.Uncompressed >= int64(2*len(big)) {
		t.Errorf("cpio is %d bytes: the %d-byte body is stored twice", st.Uncompressed, len(big))
	}
	listing := testutil.Run(t, "", []byte(testutil.Run(t, "", nil, "xz", "-dc", out)), "cpio", "-itvn", "--quiet")
	if !regexp.MustCompile(`(?m)^-rw-r--r--\s+2\s+0\s+0\s+15000 .* a$`).MatchString(listing) ||
		!regexp.MustCompile(`(?m)^-rw-r--r--\s+2\s+0\s+0\s+0 .* b$`).MatchString(listing) {
		t.Errorf("want a with the data and b empty, both with 2 links:\n%s", listing)
	}
}

// TestPackReproducible: same tree and epoch give the same bytes, also from
// a copy of the tree (other inodes, other directory order) and with any
// number of xz threads. The negative control shows the normalisation is
// what makes it so: without an epoch, touching a file changes the archive.
func TestPackReproducible(t *testing.T) {
	requireTools(t, "xz", "cp")
	root := makeTree(t, rootfs())
	touched := 0
	touch := func() { // a new mtime each call, whole hours apart
		touched++
		later := time.Unix(*epoch, 0).Add(time.Duration(touched) * time.Hour)
		testutil.Must(t, os.Chtimes(filepath.Join(root, "etc/hosts"), later, later))
	}
	for _, c := range backends {
		t.Run(string(c), func(t *testing.T) {
			opt := initramfs.Options{Compression: c, SourceDateEpoch: epoch}
			a, _ := pack(t, root, opt)
			touch()
			b, _ := pack(t, root, opt)
			if !bytes.Equal(readFile(t, a), readFile(t, b)) {
				t.Error("archives of the same tree and epoch differ after touching a file")
			}
			copied := filepath.Join(t.TempDir(), "copy")
			testutil.Run(t, "", nil, "cp", "-a", root, copied)
			if c2, _ := pack(t, copied, opt); !bytes.Equal(readFile(t, a), readFile(t, c2)) {
				t.Error("the archive of a copy of the tree differs")
			}

			opt.SourceDateEpoch = nil
			x, _ := pack(t, root, opt)
			touch()
			y, _ := pack(t, root, opt)
			if bytes.Equal(readFile(t, x), readFile(t, y)) {
				t.Error("negative control: without SOURCE_DATE_EPOCH a touched file must change the archive")
			}
		})
	}
	t.Run("xz threads", func(t *testing.T) {
		// Large enough for several blocks, so the threads really split work.
		big := makeTree(t, []file{{name: "init", mode: 0o755, data: noise(3 << 20)}})
		one, _ := pack(t, big, initramfs.Options{Compression: initramfs.CompressionXZ, SourceDateEpoch: epoch, Threads: 1, Blocks: 3})
		two, _ := pack(t, big, initramfs.Options{Compression: initramfs.CompressionXZ, SourceDateEpoch: epoch, Threads: 2, Blocks: 3})
		if !bytes.Equal(readFile(t, one), readFile(t, two)) {
			t.Error("1 and 2 xz threads give different archives")
		}
		if info := testutil.Run(t, "", nil, "xz", "-lvv", one); !regexp.MustCompile(`(?m)^\s+Blocks:\s+3$`).MatchString(info) {
			t.Errorf("Blocks: 3 gave another block count:\n%s", info)
		}
	})
}

// noise returns n bytes that compress poorly but are the same every run.
func noise(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return string(b)
}

// TestPackFailureKeepsOldArchive runs Pack with a stand-in xz that fails
// halfway: the error carries xz's message, the previous archive is
// untouched and no temporary file is left.
func TestPackFailureKeepsOldArchive(t *testing.T) {
	bin := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(bin, "xz"), []byte("#!/bin/sh\nhead -c 100 >/dev/null\necho 'xz: out of cheese' >&2\nexit 1\n"), 0o755))
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	root := makeTree(t, append(rootfs(), file{name: "blob", mode: 0o644, data: noise(4 << 20)}))
	dir := t.TempDir()
	out := filepath.Join(dir, "initramfs.cpio.xz")
	testutil.Must(t, os.WriteFile(out, []byte("old archive"), 0o644))

	err := initramfs.Pack(context.Background(), root, out, initramfs.Options{Compression: initramfs.CompressionXZ})
	if err == nil || !strings.Contains(err.Error(), "out of cheese") {
		t.Fatalf("Pack with a failing xz: %v, want xz's message", err)
	}
	if got := string(readFile(t, out)); got != "old archive" {
		t.Errorf("the previous archive was replaced by %d bytes", len(got))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := initramfs.Pack(ctx, root, out, initramfs.Options{Compression: initramfs.CompressionGo}); !errors.Is(err, context.Canceled) {
		t.Errorf("Pack with a cancelled context: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind after cancel: %v", entries)
	}
}

func TestPackErrors(t *testing.T) {
	root := makeTree(t, rootfs())
	out := filepath.Join(t.TempDir(), "x.cpio.xz")
	tests := []struct {
		name string
		src  string
		opt  initramfs.Options
		want error
	}{
		{"missing source", filepath.Join(root, "nope"), initramfs.Options{}, os.ErrNotExist},
		{"unknown compression", root, initramfs.Options{Compression: "zstd"}, initramfs.ErrCompression},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := initramfs.Pack(context.Background(), tt.src, out, tt.opt); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("bad device name", func(t *testing.T) {
		err := initramfs.Pack(context.Background(), root, out, initramfs.Options{Devices: []initramfs.Device{{Name: "dev/../../x"}}})
		if err == nil || !strings.Contains(err.Error(), "dev/../../x") {
			t.Errorf("got %v, want an error naming the device", err)
		}
	})
}

// TestBackendChoice: auto falls back to the Go encoder without xz in PATH
// and says so; xz without the binary is an error.
func TestBackendChoice(t *testing.T) {
	root := makeTree(t, rootfs())
	t.Setenv("PATH", t.TempDir())
	_, st := pack(t, root, initramfs.Options{Compression: initramfs.CompressionAuto})
	if st.Backend != initramfs.CompressionGo {
		t.Errorf("auto without xz ran %s", st.Backend)
	}
	err := initramfs.Pack(context.Background(), root, filepath.Join(t.TempDir(), "x"), initramfs.Options{Compression: initramfs.CompressionXZ})
	if !errors.Is(err, initramfs.ErrNoXZ) {
		t.Errorf("xz without the binary: %v, want ErrNoXZ", err)
	}
}

func TestParseCompression(t *testing.T) {
	for in, want := range map[string]initramfs.Compression{"": "auto", "auto": "auto", "XZ": "xz", " go ": "go"} {
		if got, err := initramfs.ParseCompression(in); err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := initramfs.ParseCompression("gzip"); !errors.Is(err, initramfs.ErrCompression) {
		t.Errorf("gzip: %v", err)
	}
	if v, err := initramfs.ParseEpoch(" 1700000000 "); err != nil || v == nil || *v != 1700000000 {
		t.Errorf("ParseEpoch: %v %v", v, err)
	}
	for _, bad := range []string{"yesterday", "-1", "1.5"} {
		if _, err := initramfs.ParseEpoch(bad); err == nil {
			t.Errorf("ParseEpoch(%q) accepted", bad)
		}
	}
	if v, err := initramfs.ParseEpoch(""); v != nil || err != nil {
		t.Errorf(`ParseEpoch("") = %v, %v`, v, err)
	}
}

// TestPackKeepsRealDeviceNodes packs a tree holding a device node made by
// mknod (root only) and checks its number survives next to the defaults.
func TestPackKeepsRealDeviceNodes(t *testing.T) {
	requireTools(t, "xz", "cpio")
	root := makeTree(t, []file{{name: "dev", dir: true, mode: 0o755}})
	if err := syscall.Mknod(filepath.Join(root, "dev/ttyS0"), syscall.S_IFCHR|0o620, int(4<<8|64)); err != nil {
		t.Skipf("mknod needs root: %v", err)
	}
	testutil.Must(t, os.Chmod(filepath.Join(root, "dev/ttyS0"), os.ModeDevice|os.ModeCharDevice|0o620)) // the umask
	out, _ := pack(t, root, initramfs.Options{SourceDateEpoch: epoch})
	listing := testutil.Run(t, "", []byte(testutil.Run(t, "", nil, "xz", "-dc", out)), "cpio", "-itvn", "--quiet")
	for _, want := range []string{`crw--w----\s+1\s+0\s+0\s+4,\s+64 .* dev/ttyS0`, `crw-------\s+1\s+0\s+0\s+5,\s+1 .* dev/console`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(listing) {
			t.Errorf("no line matching %s in\n%s", want, listing)
		}
	}
	if strings.Count(listing, "dev/console") != 1 || !slices.Contains(strings.Fields(listing), "dev") {
		t.Errorf("dev entries wrong:\n%s", listing)
	}
}

// TestPackSymlinkedRoot packs a tree through a symlink to it: the archive
// must hold the tree, not a symlink named ".".
func TestPackSymlinkedRoot(t *testing.T) {
	root := makeTree(t, rootfs())
	link := filepath.Join(t.TempDir(), "link")
	testutil.Must(t, os.Symlink(root, link))
	opt := initramfs.Options{Compression: initramfs.CompressionGo, SourceDateEpoch: epoch}
	direct, _ := pack(t, root, opt)
	via, _ := pack(t, link, opt)
	if !bytes.Equal(readFile(t, direct), readFile(t, via)) {
		t.Error("packing through a symlink to the tree gives another archive")
	}
}
