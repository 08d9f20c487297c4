package flist

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// distinctBlobs counts the distinct block ids of an flist.
func distinctBlobs(t testing.TB, fl string) int {
	t.Helper()
	r, err := Open(fl)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ids := map[[HashSize]byte]bool{}
	if err := r.EachBlock(ctx, func(_ int64, b Block) error {
		ids[b.ID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

func routesOf(t testing.TB, fl string) []store.Route {
	t.Helper()
	r, err := Open(fl)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	routes, err := r.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return routes
}

// TestPackUnpack packs a tree of every file type and unpacks it again, over a
// dir store and over a router sharding 00-7f / 80-ff to two dir stores; a
// second pack of the unchanged tree uploads nothing.
func TestPackUnpack(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	tests := []struct {
		name   string
		stores func(a, b string) string
		routes func(a, b string) []store.Route
	}{
		{"dir", func(a, _ string) string { return "dir://" + a },
			func(a, _ string) []store.Route { return []store.Route{{Start: 0, End: 255, URL: "dir://" + a}} }},
		{"router", func(a, b string) string { return "00-7f=dir://" + a + ",80-ff=dir://" + b },
			func(a, b string) []store.Route {
				return []store.Route{{Start: 0, End: 0x7f, URL: "dir://" + a}, {Start: 0x80, End: 0xff, URL: "dir://" + b}}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			a, b := filepath.Join(work, "store0"), filepath.Join(work, "store1")
			st, err := store.Parse(tt.stores(a, b))
			if err != nil {
				t.Fatal(err)
			}
			fl := filepath.Join(work, "test.fl")
			stats, err := Pack(ctx, src, fl, PackOptions{Store: st, Parallel: 3})
			if err != nil {
				t.Fatal(err)
			}
			distinct := distinctBlobs(t, fl)
			if stats.Uploaded != distinct || stats.Skipped != 0 {
				t.Errorf("first pack: %d uploaded, %d skipped; the flist has %d distinct blobs", stats.Uploaded, stats.Skipped, distinct)
			}
			if stats.Blocks <= distinct {
				t.Errorf("%d block rows for %d distinct blobs: the duplicates were not recorded", stats.Blocks, distinct)
			}
			want := Stats{Files: 11, Dirs: 9, Symlinks: 4, Others: 1}
			if os.Geteuid() == 0 {
				want.Dirs, want.Others = 10, 2 // dev/ and dev/null
			}
			if stats.Files != want.Files || stats.Dirs != want.Dirs || stats.Symlinks != want.Symlinks || stats.Others != want.Others {
				t.Errorf("stats %s; want %d files, %d dirs, %d symlinks, %d other", stats, want.Files, want.Dirs, want.Symlinks, want.Others)
			}
			gotRoutes, wantRoutes := routesOf(t, fl), tt.routes(a, b)
			if len(gotRoutes) != len(wantRoutes) {
				t.Fatalf("routes %+v, want %+v", gotRoutes, wantRoutes)
			}
			for i := range wantRoutes {
				if gotRoutes[i] != wantRoutes[i] {
					t.Errorf("route %d = %+v, want %+v", i, gotRoutes[i], wantRoutes[i])
				}
			}
			if tt.name == "router" {
				checkSharded(t, a, 0x00, 0x7f)
				checkSharded(t, b, 0x80, 0xff)
			}

			dst := filepath.Join(work, "unpacked")
			if err := Unpack(ctx, fl, dst, UnpackOptions{CacheDir: filepath.Join(work, "cache"), Routes: localRoutes}); err != nil {
				t.Fatal(err)
			}
			compareTrees(t, src, dst)
			// Unpacking again over the result (a rerun after a failure)
			// works and changes nothing.
			if err := Unpack(ctx, fl, dst, UnpackOptions{Routes: localRoutes}); err != nil {
				t.Fatal(err)
			}
			compareTrees(t, src, dst)

			again, err := Pack(ctx, src, filepath.Join(work, "again.fl"), PackOptions{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			if again.Uploaded != 0 || again.Skipped != distinct {
				t.Errorf("second pack: %d uploaded, %d skipped, want 0 and %d", again.Uploaded, again.Skipped, distinct)
			}
		})
	}
}

// checkSharded fails unless every blob in the dir store has id[0] in [lo, hi].
func checkSharded(t *testing.T, root string, lo, hi byte) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		first, err := hex.DecodeString(d.Name()[:2])
		if err != nil {
			return err
		}
		if first[0] < lo || first[0] > hi {
			t.Errorf("blob %s in the store for %02x-%02x", d.Name(), lo, hi)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("store %s is empty", root)
	}
}

// TestPackInodeOrder checks the numbering against rfs's rule (spec §1.3),
// computed here independently from the source tree: a directory's inode, then
// its non-directory children, and subdirectories numbered LIFO as they are
// popped. Children are taken in name order.
func TestPackInodeOrder(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	fl := filepath.Join(t.TempDir(), "order.fl")
	if _, err := Pack(ctx, src, fl, PackOptions{Store: store.NewDir(t.TempDir())}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	next := int64(1)
	list := []string{"/"}
	for len(list) > 0 {
		dir := list[len(list)-1]
		list = list[:len(list)-1]
		want[dir] = next
		next++
		entries, err := os.ReadDir(filepath.Join(src, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries { // os.ReadDir sorts by name
			p := joinPath(dir, e.Name())
			if e.IsDir() {
				list = append(list, p)
				continue
			}
			want[p] = next
			next++
		}
	}
	r, err := Open(fl)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[string]int64{}
	if err := r.Walk(ctx, func(p string, in *Inode) error {
		got[p] = in.Ino
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d inodes, want %d", len(got), len(want))
	}
	for p, ino := range want {
		if got[p] != ino {
			t.Errorf("%s: ino %d, want %d", p, got[p], ino)
		}
	}
	root, _ := r.Inode(ctx, RootIno)
	if root.Name != "/" || root.Parent != 0 || root.Type() != TypeDir {
		t.Errorf("root = %+v", root)
	}
}

// TestPackFailure: a store that cannot take blobs fails the pack, the error
// names the files, and no flist is left at the output path (a stale one from
// an earlier run is removed), nor any temporary file.
func TestPackFailure(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	work := t.TempDir()
	// A store root below a regular file: every write fails.
	blocker := filepath.Join(work, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	fl := filepath.Join(out, "modules.fl")
	if err := os.WriteFile(fl, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Pack(ctx, src, fl, PackOptions{Store: store.NewDir(filepath.Join(blocker, "store")), Retries: 1, RetryDelay: 1})
	if !errors.Is(err, ErrUpload) {
		t.Fatalf("Pack = %v, want ErrUpload", err)
	}
	var ue *UploadError
	if !errors.As(err, &ue) || len(ue.Files) == 0 || !strings.HasPrefix(ue.Files[0], src) {
		t.Fatalf("error does not name the files: %v", err)
	}
	if !strings.Contains(err.Error(), ue.Files[0]) {
		t.Errorf("message does not name %s: %v", ue.Files[0], err)
	}
	if !strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("message does not say how many attempts were made: %v", err)
	}
	left, _ := os.ReadDir(out)
	for _, e := range left {
		t.Errorf("left behind: %s", e.Name())
	}
}

func TestPackErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  string
		opt  PackOptions
	}{
		{"no store", dir, PackOptions{}},
		{"source missing", filepath.Join(dir, "missing"), PackOptions{Store: store.NewDir(dir)}},
		{"source is a file", file, PackOptions{Store: store.NewDir(dir)}},
	}
	for _, tt := range tests {
		out := filepath.Join(t.TempDir(), "x.fl")
		if _, err := Pack(ctx, tt.src, out, tt.opt); err == nil {
			t.Errorf("%s: Pack succeeded", tt.name)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: flist left behind", tt.name)
		}
	}
}

// TestRouteOverride writes the runtime route instead of the pack store.
func TestRouteOverride(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	fl := filepath.Join(t.TempDir(), "new", "dir", "o.fl") // the output directory is created
	override := []store.Route{{Start: 0, End: 255, URL: "s3s://GKread:readsecret@hub.example.com:443/blobs?region=garage"}}
	if _, err := Pack(ctx, src, fl, PackOptions{Store: store.NewDir(t.TempDir()), RouteOverride: override}); err != nil {
		t.Fatal(err)
	}
	if got := routesOf(t, fl); len(got) != 1 || got[0] != override[0] {
		t.Errorf("routes = %+v, want %+v", got, override)
	}
}

// TestWriterReaderRoundTrip writes rows of every file type with the Writer
// and reads them back, including a gid that differs from the uid.
func TestWriterReaderRoundTrip(t *testing.T) {
	fl := filepath.Join(t.TempDir(), "rt.fl")
	w, err := Create(fl)
	if err != nil {
		t.Fatal(err)
	}
	key := func(b byte) (k [HashSize]byte) {
		for i := range k {
			k[i] = b + byte(i)
		}
		return k
	}
	inodes := []Inode{
		{Parent: 0, Name: "/", Size: 4096, UID: 0, GID: 0, Mode: uint32(TypeDir) | 0o755, Ctime: 1, Mtime: 2},
		{Parent: 1, Name: "regular", Size: 3, UID: 1000, GID: 2000, Mode: uint32(TypeRegular) | 0o644, Ctime: 3, Mtime: 4},
		{Parent: 1, Name: "empty", Size: 0, UID: 1, GID: 2, Mode: uint32(TypeRegular) | 0o600},
		{Parent: 1, Name: "link", Size: 12, Mode: uint32(TypeSymlink) | 0o777, Data: []byte("/proc/mounts")},
		{Parent: 1, Name: "fifo", Mode: uint32(TypeFIFO) | 0o644},
		{Parent: 1, Name: "null", Mode: uint32(TypeChar) | 0o666, Rdev: 0x103},
		{Parent: 1, Name: "sda", Mode: uint32(TypeBlock) | 0o660, Rdev: 0x800, GID: 6},
		{Parent: 1, Name: "sock", Mode: uint32(TypeSocket) | 0o755},
		{Parent: 1, Name: "sub", Size: 4096, Mode: uint32(TypeDir) | 0o1777, Ctime: -5, Mtime: 1 << 40},
		{Parent: 9, Name: "ünïcode name", Size: 0, Mode: uint32(TypeRegular) | 0o4755},
	}
	for i, in := range inodes {
		ino, err := w.AddInode(in)
		if err != nil {
			t.Fatal(err)
		}
		if ino != int64(i+1) {
			t.Fatalf("inode %q got ino %d, want %d", in.Name, ino, i+1)
		}
	}
	// Two blocks with the same id and different keys keep their order.
	blocks := []Block{{ID: key(1), Key: key(2)}, {ID: key(1), Key: key(3)}, {ID: key(9), Key: key(4)}}
	if err := w.AddBlocks(2, blocks); err != nil {
		t.Fatal(err)
	}
	routes := []store.Route{{Start: 0, End: 128, URL: "zdb://hub1.grid.tf"}, {Start: 129, End: 255, URL: "zdb://hub2.grid.tf"}}
	for _, r := range routes {
		if err := w.AddRoute(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.SetTag("version", "0.1"); err != nil {
		t.Fatal(err)
	}
	if err := w.SetTag("version", "0.2"); err != nil { // insert or replace
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}

	r, err := Open(fl)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, want := range inodes {
		got, err := r.Inode(ctx, int64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		want.Ino = int64(i + 1)
		if got.Ino != want.Ino || got.Parent != want.Parent || got.Name != want.Name || got.Size != want.Size ||
			got.UID != want.UID || got.GID != want.GID || got.Mode != want.Mode || got.Rdev != want.Rdev ||
			got.Ctime != want.Ctime || got.Mtime != want.Mtime || !bytes.Equal(got.Data, want.Data) ||
			(got.Data == nil) != (want.Data == nil) {
			t.Errorf("inode %d = %+v, want %+v", i+1, got, want)
		}
	}
	gotBlocks, err := r.Blocks(ctx, 2)
	if err != nil || len(gotBlocks) != 3 || gotBlocks[0] != blocks[0] || gotBlocks[1] != blocks[1] || gotBlocks[2] != blocks[2] {
		t.Errorf("blocks = %v, %v", gotBlocks, err)
	}
	if got, _ := r.Routes(ctx); len(got) != 2 || got[0] != routes[0] || got[1] != routes[1] {
		t.Errorf("routes = %+v", got)
	}
	if tags, _ := r.Tags(ctx); len(tags) != 1 || tags["version"] != "0.2" {
		t.Errorf("tags = %v", tags)
	}
	var tree bytes.Buffer
	if err := r.Tree(ctx, &tree); err != nil {
		t.Fatal(err)
	}
	wantTree := "📁 /\n  📄 regular\n  📄 empty\n  🔗 link\n  ❓ fifo\n  ❓ null\n  ❓ sda\n  ❓ sock\n  📁 sub\n    📄 ünïcode name\n"
	if tree.String() != wantTree {
		t.Errorf("tree:\n%s\nwant:\n%s", tree.String(), wantTree)
	}
}

// settle waits until the clock has passed the second of every ctime in the
// tree, so a pack's walk starts in a later second than any change (files
// changed in the second of the walk are, rightly, never reused).
func settle(t *testing.T, root string) {
	t.Helper()
	var newest int64
	_ = filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		var st unix.Stat_t
		if err == nil && unix.Lstat(p, &st) == nil {
			newest = max(newest, st.Ctim.Sec)
		}
		return nil
	})
	for time.Now().Unix() <= newest {
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPackReuse: packing again to the same path takes unchanged files'
// blocks from the previous flist without reading them, but notices a
// content change that kept size and mtime (by the ctime) and a blob the
// store lost.
func TestPackReuse(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	work := t.TempDir()
	storeRoot := filepath.Join(work, "store")
	st := store.NewDir(storeRoot)
	fl := filepath.Join(work, "reuse.fl")
	settle(t, src)
	plain := false // progress on, in plain mode
	first, err := Pack(ctx, src, fl, PackOptions{Store: st, Progress: &progress.Options{Out: io.Discard, Terminal: &plain}})
	if err != nil {
		t.Fatal(err)
	}
	distinct := distinctBlobs(t, fl)
	var before bytes.Buffer
	if err := Inspect(&before, fl); err != nil {
		t.Fatal(err)
	}

	var firstFile, secondFile, thirdFile unix.Stat_t
	if err := unix.Stat(fl, &firstFile); err != nil {
		t.Fatal(err)
	}
	second, err := Pack(ctx, src, fl, PackOptions{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	// The same bytes: the flist is kept, with the new walk's time.
	if err := unix.Stat(fl, &secondFile); err != nil {
		t.Fatal(err)
	}
	if secondFile.Ino != firstFile.Ino || secondFile.Mtim.Nano() <= firstFile.Mtim.Nano() {
		t.Errorf("unchanged repack: inode %d -> %d, mtime %d -> %d; want the same file, a later mtime",
			firstFile.Ino, secondFile.Ino, firstFile.Mtim.Nano(), secondFile.Mtim.Nano())
	}
	if second.Reused != first.Files || second.Uploaded != 0 || second.Skipped != distinct || second.Blocks != first.Blocks {
		t.Errorf("unchanged repack: %s; want all %d files reused, %d blobs skipped", second, first.Files, distinct)
	}
	var after bytes.Buffer
	if err := Inspect(&after, fl); err != nil {
		t.Fatal(err)
	}
	if before.String() != after.String() {
		t.Error("the repacked flist differs")
	}

	// Same size, same mtime, different content: only the ctime tells.
	hello := filepath.Join(src, "hello.txt")
	var old unix.Stat_t
	if err := unix.Stat(hello, &old); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hello, []byte("HELLO WORLD\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{old.Mtim, old.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, hello, ts, 0); err != nil {
		t.Fatal(err)
	}
	// And a blob the store lost.
	if err := os.Remove(blobFile(t, fl, storeRoot, "/big/compressible.txt")); err != nil {
		t.Fatal(err)
	}
	settle(t, src)
	third, err := Pack(ctx, src, fl, PackOptions{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(fl, &thirdFile); err != nil || thirdFile.Ino == secondFile.Ino {
		t.Errorf("the changed tree's flist did not replace the old one (%v)", err)
	}
	// hello.txt is also dup/hardlink.txt: two files re-read, one new blob;
	// compressible.txt re-encoded, its blob uploaded again.
	if third.Reused != first.Files-3 || third.Uploaded != 2 {
		t.Errorf("repack after changes: %s; want %d reused, 2 uploaded", third, first.Files-3)
	}
	dst := filepath.Join(work, "unpacked")
	if err := Unpack(ctx, fl, dst, UnpackOptions{Routes: localRoutes}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
	if rep, err := Verify(ctx, fl, VerifyOptions{Deep: true, Routes: localRoutes}); err != nil {
		t.Errorf("verify: %s: %v", rep, err)
	}

	fourth, err := Pack(ctx, src, fl, PackOptions{Store: st, NoReuse: true})
	if err != nil {
		t.Fatal(err)
	}
	if fourth.Reused != 0 || fourth.Uploaded != 0 {
		t.Errorf("NoReuse: %s", fourth)
	}
}

// TestPackReproducible: the same tree gives the same flist bytes however
// the workers interleave; a changed mtime (the negative control) does not.
// The tree has more rows than the Writer inserts at once.
func TestPackReproducible(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	randomTree(t, src, "many/f", make([]int, 2*batchRows)...)
	for i := range 2 * batchRows {
		if err := os.WriteFile(filepath.Join(src, "many", fmt.Sprintf("g%03d", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := store.NewDir(t.TempDir())
	pack := func(name string) []byte {
		fl := filepath.Join(t.TempDir(), name)
		if _, err := Pack(ctx, src, fl, PackOptions{Store: st, Parallel: 7, NoReuse: true}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(fl)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := pack("a.fl")
	if !bytes.Equal(first, pack("b.fl")) {
		t.Fatal("two packs of one tree differ")
	}
	if err := os.Chtimes(filepath.Join(src, "empty"), time.Unix(1, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, pack("c.fl")) {
		t.Fatal("a changed mtime did not change the flist")
	}
}

// With a fixed Time (SOURCE_DATE_EPOCH), the same content written at
// another time, in another folder, gives the same flist; a previous flist at
// the output path is not trusted for reuse.
func TestPackFixedTime(t *testing.T) {
	epoch := int64(1700000000)
	st := store.NewDir(t.TempDir())
	out := filepath.Join(t.TempDir(), "fixed.fl")
	pack := func(src string) []byte {
		s, err := Pack(ctx, src, out, PackOptions{Store: st, Time: &epoch})
		if err != nil {
			t.Fatal(err)
		}
		if s.Reused != 0 {
			t.Errorf("%d files reused from the previous flist", s.Reused)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := t.TempDir(), filepath.Join(t.TempDir(), "elsewhere")
	makeTree(t, a)
	if out, err := exec.Command("cp", "-a", a, b).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	if err := filepath.WalkDir(b, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(1e9), unix.NsecToTimespec(1e9)}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pack(a), pack(b)) {
		t.Fatal("the same content with other times gives another flist")
	}
	r, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Walk(ctx, func(path string, in *Inode) error {
		if in.Mtime != epoch || in.Ctime != epoch {
			t.Errorf("%s: mtime %d ctime %d, want %d", path, in.Mtime, in.Ctime, epoch)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPackFixedTimeReuse: with a fixed Time the flist cannot tell a
// changed file, so the ReuseIndex does: a second pack of the unchanged tree
// reads no file and gives the same bytes; a tree copied elsewhere (other
// inodes) is read again and gives the same bytes too; a file changed in
// place is read again; a damaged index is ignored with a warning.
func TestPackFixedTimeReuse(t *testing.T) {
	epoch := int64(1700000000)
	src := filepath.Join(t.TempDir(), "tree")
	makeTree(t, src)
	settle(t, src)
	work := t.TempDir()
	st := store.NewDir(filepath.Join(work, "store"))
	fl := filepath.Join(work, "dist", "fixed.fl")
	index := filepath.Join(work, "state", "fixed.fl.reuse")
	log, hook := test.NewNullLogger()
	pack := func(dir string) (Stats, []byte) {
		t.Helper()
		s, err := Pack(ctx, dir, fl, PackOptions{Store: st, Time: &epoch, ReuseIndex: index, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(fl)
		if err != nil {
			t.Fatal(err)
		}
		return s, b
	}
	first, want := pack(src)
	if first.Reused != 0 {
		t.Fatalf("first pack reused %d files", first.Reused)
	}
	if _, err := os.Stat(index); err != nil {
		t.Fatalf("no reuse index: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(fl)); len(entries) != 1 {
		t.Errorf("the flist's folder holds %d entries; the index belongs elsewhere", len(entries))
	}

	second, got := pack(src)
	if second.Reused != first.Files || second.Uploaded != 0 {
		t.Errorf("unchanged repack: %s; want all %d files reused (none read), no upload", second, first.Files)
	}
	if !bytes.Equal(got, want) {
		t.Error("the repack with reuse gives another flist")
	}

	// Another path, other inodes: every file is read, the bytes are the same.
	moved := filepath.Join(t.TempDir(), "elsewhere")
	if out, err := exec.Command("cp", "-a", src, moved).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	settle(t, moved)
	third, got := pack(moved)
	if third.Reused != 0 || !bytes.Equal(got, want) {
		t.Errorf("the tree copied elsewhere: %d files reused, same bytes %v; want 0 and true", third.Reused, bytes.Equal(got, want))
	}

	// A file rewritten in place with the same size and mtime is read again.
	hello := filepath.Join(moved, "dup/one.txt")
	var old unix.Stat_t
	if err := unix.Stat(hello, &old); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(hello)
	if err != nil {
		t.Fatal(err)
	}
	data[0] ^= 0x20
	if err := os.WriteFile(hello, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.UtimesNano(hello, []unix.Timespec{old.Atim, old.Mtim}); err != nil {
		t.Fatal(err)
	}
	settle(t, moved)
	fourth, got := pack(moved)
	if fourth.Reused != first.Files-1 || bytes.Equal(got, want) {
		t.Errorf("one file changed in place: %s; want %d files reused and another flist", fourth, first.Files-1)
	}

	// A damaged index is ignored, with a warning, and replaced.
	b, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(index, b, 0o644); err != nil {
		t.Fatal(err)
	}
	hook.Reset()
	fifth, _ := pack(moved)
	warned := false
	for _, e := range hook.AllEntries() {
		warned = warned || (e.Level == logrus.WarnLevel && strings.Contains(e.Message, "reuse index ignored"))
	}
	if fifth.Reused != 0 || !warned {
		t.Errorf("damaged index: %d files reused, warned %v", fifth.Reused, warned)
	}
	if sixth, _ := pack(moved); sixth.Reused != first.Files {
		t.Errorf("after the index was rewritten: %d files reused, want %d", sixth.Reused, first.Files)
	}
}

// TestPackNonUTF8Name: a name that is not UTF-8 is recorded the way rfs
// records it (invalid bytes become U+FFFD), with a warning.
func TestPackNonUTF8Name(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "caf\xe9.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	log, hook := test.NewNullLogger()
	fl := filepath.Join(t.TempDir(), "n.fl")
	if _, err := Pack(ctx, src, fl, PackOptions{Store: store.NewDir(t.TempDir()), Log: log}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(fl)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.LookupPath(ctx, "/caf\uFFFD.txt"); err != nil {
		t.Error(err)
	}
	if e := hook.LastEntry(); e == nil || e.Level != logrus.WarnLevel {
		t.Errorf("no warning: %v", hook.AllEntries())
	}
}
