package initramfs_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/cpio"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestCheckGood checks a packed tree and compares the report with the
// tree itself.
func TestCheckGood(t *testing.T) {
	files := rootfs()
	out, st := pack(t, makeTree(t, files), initramfs.Options{SourceDateEpoch: epoch})
	rep, err := initramfs.Check(context.Background(), out, initramfs.CheckOptions{MaxSize: 1 << 30})
	if err != nil {
		t.Fatalf("Check of a good archive: %v", err)
	}
	fi, _ := os.Stat(out)
	if rep.Compressed != fi.Size() || rep.Uncompressed != st.Uncompressed || rep.Entries != st.Entries || rep.Check != "CRC32" {
		t.Errorf("report %+v, file %d bytes, stats %+v", rep, fi.Size(), st)
	}
	var regular int
	for _, f := range files {
		if !f.dir && !f.sym {
			regular++
		}
	}
	if len(rep.Largest) != regular {
		t.Errorf("largest lists %d files, the tree has %d", len(rep.Largest), regular)
	}
	if len(rep.Largest) == 0 || rep.Largest[0].Name != "lib/big.so" ||
		!slices.IsSortedFunc(rep.Largest, func(a, b initramfs.Entry) int { return int(b.Size - a.Size) }) {
		t.Errorf("largest entries not largest first: %+v", rep.Largest)
	}
	var buf bytes.Buffer
	testutil.Must(t, rep.Print(&buf))
	for _, want := range []string{"CRC32", "lib/big.so", "largest"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("printed report lacks %q:\n%s", want, buf.String())
		}
	}
	// The same archive read as a stream: the same report but for the
	// compressed size, which a stream does not tell.
	stream, err := initramfs.CheckStream(context.Background(), bytes.NewReader(readFile(t, out)), "embedded", initramfs.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stream.Compressed != 0 || stream.Uncompressed != rep.Uncompressed || stream.Entries != rep.Entries || !slices.Equal(stream.Largest, rep.Largest) {
		t.Errorf("stream report %+v, file report %+v", stream, rep)
	}
	buf.Reset()
	testutil.Must(t, stream.Print(&buf))
	if !strings.HasPrefix(buf.String(), "embedded: ") || !strings.Contains(buf.String(), "xz check CRC32") {
		t.Errorf("printed stream report:\n%s", buf.String())
	}
}

// TestCheckLimitsLargest packs more than LargestCount files.
func TestCheckLimitsLargest(t *testing.T) {
	files := rootfs()
	for i := range 30 {
		files = append(files, file{name: "f" + strings.Repeat("x", i), mode: 0o644, data: strings.Repeat("y", i)})
	}
	out, _ := pack(t, makeTree(t, files), initramfs.Options{})
	rep, err := initramfs.Check(context.Background(), out, initramfs.CheckOptions{})
	testutil.Must(t, err)
	if len(rep.Largest) != initramfs.LargestCount {
		t.Errorf("largest has %d entries, want %d", len(rep.Largest), initramfs.LargestCount)
	}
}

// entry is a raw record for archives Pack would never write.
type entry struct {
	name, data string
	mode       uint32
	major      uint32
	minor      uint32
}

func reg(name string, perm uint32) entry {
	return entry{name: name, mode: cpio.TypeReg | perm, data: "x"}
}
func dir(name string) entry { return entry{name: name, mode: cpio.TypeDir | 0o755} }

// base is the smallest valid image; cases change it.
func base() []entry {
	return []entry{
		reg("init", 0o755), dir("sbin"), reg("sbin/zinit", 0o755), dir("dev"),
		{name: "dev/console", mode: cpio.TypeChar | 0o600, major: 5, minor: 1},
	}
}

// rawArchive writes entries as a cpio compressed with the Go encoder and the
// given xz check.
func rawArchive(t testing.TB, entries []entry, check byte) string {
	t.Helper()
	var c bytes.Buffer
	w := cpio.NewWriter(&c)
	for i, e := range entries {
		h := &cpio.Header{Name: e.name, Mode: e.mode, NLink: 1, Ino: uint32(i + 1), RdevMajor: e.major, RdevMinor: e.minor}
		switch e.mode & cpio.TypeMask {
		case cpio.TypeSymlink:
			h.Linkname = e.data
		case cpio.TypeReg:
			h.Size = int64(len(e.data))
		}
		testutil.Must(t, w.WriteHeader(h))
		if h.Size > 0 {
			_, err := w.Write([]byte(e.data))
			testutil.Must(t, err)
		}
	}
	testutil.Must(t, w.Close())
	out := filepath.Join(t.TempDir(), "raw.cpio.xz")
	f, err := os.Create(out)
	testutil.Must(t, err)
	zw, err := xz.WriterConfig{CheckSum: check}.NewWriter(f)
	testutil.Must(t, err)
	_, err = zw.Write(c.Bytes())
	testutil.Must(t, err)
	testutil.Must(t, zw.Close())
	testutil.Must(t, f.Close())
	return out
}

func TestCheckBad(t *testing.T) {
	replace := func(name string, e entry) []entry {
		es := base()
		for i := range es {
			if es[i].name == name {
				es[i] = e
			}
		}
		return es
	}
	without := func(name string) []entry {
		return slices.DeleteFunc(base(), func(e entry) bool { return e.name == name })
	}
	tests := []struct {
		name    string
		entries []entry
		check   byte
		max     int64
		problem string // "" for a valid archive
		want    error
	}{
		{name: "valid", entries: base()},
		{name: "init symlink to zinit", entries: replace("init", entry{name: "init", mode: cpio.TypeSymlink | 0o777, data: "/sbin/zinit"})},
		{name: "zinit via a symlinked directory", entries: []entry{
			reg("init", 0o755), dir("usr"), dir("usr/bin"), reg("usr/bin/zinit", 0o755),
			{name: "sbin", mode: cpio.TypeSymlink | 0o777, data: "usr/bin"}, dir("dev"),
			{name: "dev/console", mode: cpio.TypeChar | 0o600, major: 5, minor: 1}}},
		{name: "no init", entries: without("init"), problem: "/init: missing", want: initramfs.ErrInvalid},
		{name: "init not executable", entries: replace("init", reg("init", 0o644)), problem: "/init: not executable", want: initramfs.ErrInvalid},
		{name: "init dangling symlink", entries: replace("init", entry{name: "init", mode: cpio.TypeSymlink | 0o777, data: "bin/none"}), problem: "/init: missing", want: initramfs.ErrInvalid},
		{name: "symlink loop", entries: replace("init", entry{name: "init", mode: cpio.TypeSymlink | 0o777, data: "init"}), problem: "too many levels", want: initramfs.ErrInvalid},
		{name: "no zinit", entries: without("sbin/zinit"), problem: "/sbin/zinit: missing", want: initramfs.ErrInvalid},
		{name: "zinit a directory", entries: replace("sbin/zinit", dir("sbin/zinit")), problem: "/sbin/zinit: not a regular file", want: initramfs.ErrInvalid},
		{name: "no console", entries: without("dev/console"), problem: "/dev/console: missing", want: initramfs.ErrInvalid},
		{name: "console wrong number", entries: replace("dev/console", entry{name: "dev/console", mode: cpio.TypeChar | 0o600, major: 4, minor: 1}), problem: "want character device 5:1", want: initramfs.ErrInvalid},
		{name: "console a file", entries: replace("dev/console", reg("dev/console", 0o600)), problem: "want character device 5:1", want: initramfs.ErrInvalid},
		{name: "absolute name", entries: append(base(), reg("/etc/passwd", 0o644)), problem: "/etc/passwd: absolute entry name", want: initramfs.ErrInvalid},
		{name: "dot dot", entries: append(base(), reg("sbin/../../escape", 0o644)), problem: "sbin/../../escape: entry name contains ..", want: initramfs.ErrInvalid},
		{name: "duplicate", entries: append(base(), reg("init", 0o755)), problem: "init: duplicate entry", want: initramfs.ErrInvalid},
		{name: "file before its directory", entries: append(base(), reg("etc/hosts", 0o644), dir("etc")), problem: "etc/hosts: comes before its directory etc", want: initramfs.ErrInvalid},
		{name: "crc64", entries: base(), check: xz.CRC64, problem: "xz check is CRC64", want: initramfs.ErrInvalid},
		{name: "too large", entries: base(), max: 10, problem: "more than INITRAMFS_MAX_SIZE 10", want: initramfs.ErrTooLarge},
		{name: "several problems at once", entries: without("init")[1:], problem: "/init: missing; /sbin/zinit: missing", want: initramfs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := tt.check
			if check == 0 {
				check = xz.CRC32
			}
			archive := rawArchive(t, tt.entries, check)
			rep, err := initramfs.Check(context.Background(), archive, initramfs.CheckOptions{MaxSize: tt.max})
			verify(t, rep, err, tt.want, tt.problem)
			if tt.want == initramfs.ErrTooLarge {
				return // the size of an archive inside a stream is not known
			}
			// The same archive inside a kernel: CheckStream finds the same.
			embedded := append(readFile(t, archive), "rest of the kernel"...)
			rep, err = initramfs.CheckStream(context.Background(), bytes.NewReader(embedded), "vmlinuz.efi", initramfs.CheckOptions{MaxSize: tt.max})
			verify(t, rep, err, tt.want, tt.problem)
			if err != nil && !strings.Contains(err.Error(), "vmlinuz.efi") {
				t.Errorf("the stream's error does not name it: %v", err)
			}
		})
	}
}

// verify compares what Check said with what a TestCheckBad case expects.
func verify(t *testing.T, rep *initramfs.Report, err, want error, problem string) {
	t.Helper()
	if want == nil {
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("valid archive: %v %q", err, rep.Problems)
		}
		return
	}
	if !errors.Is(err, want) || !errors.Is(err, initramfs.ErrInvalid) {
		t.Fatalf("got %v, want %v", err, want)
	}
	if joined := strings.Join(rep.Problems, "; "); !strings.Contains(joined, problem) || !strings.Contains(err.Error(), problem) {
		t.Errorf("problems %q, error %q; want %q in both", joined, err, problem)
	}
}

// TestCheckCorrupt flips one byte inside the compressed data: the xz check
// (or the LZMA2 decoder) must catch it.
func TestCheckCorrupt(t *testing.T) {
	out, _ := pack(t, makeTree(t, rootfs()), initramfs.Options{SourceDateEpoch: epoch})
	data := readFile(t, out)
	data[len(data)/2] ^= 0x55
	testutil.Must(t, os.WriteFile(out, data, 0o644))
	if _, err := initramfs.Check(context.Background(), out, initramfs.CheckOptions{}); !errors.Is(err, initramfs.ErrInvalid) {
		t.Errorf("corrupt archive: %v, want ErrInvalid", err)
	}
	if _, err := initramfs.CheckStream(context.Background(), bytes.NewReader(data), "kernel", initramfs.CheckOptions{}); !errors.Is(err, initramfs.ErrInvalid) {
		t.Errorf("corrupt embedded archive: %v, want ErrInvalid", err)
	}
	testutil.Must(t, os.WriteFile(out, []byte("not an archive at all"), 0o644))
	if _, err := initramfs.Check(context.Background(), out, initramfs.CheckOptions{}); !errors.Is(err, initramfs.ErrInvalid) {
		t.Errorf("garbage: %v, want ErrInvalid", err)
	}
}

// TestListGolden compares the listing of a packed tree with
// testdata/list.golden (go test -run TestListGolden -update rewrites it).
func TestListGolden(t *testing.T) {
	out, _ := pack(t, makeTree(t, rootfs()), initramfs.Options{SourceDateEpoch: epoch})
	var buf bytes.Buffer
	testutil.Must(t, initramfs.List(context.Background(), &buf, out))
	golden := filepath.Join("testdata", "list.golden")
	if *update {
		testutil.Must(t, os.WriteFile(golden, buf.Bytes(), 0o644))
	}
	if want := readFile(t, golden); !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("List output differs from %s (rerun with -update after checking):\n%s", golden, buf.String())
	}
}

// WalkStream reads an archive other data follows (a kernel around it) and
// stops at the end of its xz stream.
func TestWalkStreamStopsAtItsEnd(t *testing.T) {
	root := makeTree(t, rootfs())
	out := filepath.Join(t.TempDir(), "initramfs.cpio.xz")
	if err := initramfs.Pack(context.Background(), root, out, initramfs.Options{Compression: initramfs.CompressionGo, SourceDateEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	walk := func(h *cpio.Header, _ io.Reader) error {
		names = append(names, h.Name)
		return nil
	}
	if err := initramfs.WalkStream(context.Background(), bytes.NewReader(append(data, "rest of the kernel"...)), walk); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "sbin/zinit") || !slices.Contains(names, "dev/console") {
		t.Errorf("entries: %v", names)
	}
	// A damaged stream is still an error.
	data[len(data)/2] ^= 0xff
	if err := initramfs.WalkStream(context.Background(), bytes.NewReader(data), walk); err == nil {
		t.Error("a corrupt embedded archive reads without error")
	}
}
