package flist

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var ctx = context.Background()

func openTestdata(t testing.TB, name string) *Reader {
	t.Helper()
	r, err := Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestSampleFlists reads the flists written by rfs (testdata/README of the
// shared testdata: counts, block rows, routes, no tags).
func TestSampleFlists(t *testing.T) {
	tests := []struct {
		file                         string
		inodes, dirs, files, symlink int
		bytes                        uint64
		blockRows, distinctIDs       int
		route                        string
		uid, gid                     uint32
	}{
		{"hello-world-latest.fl", 15, 7, 7, 1, 13441, 2, 2, "dir:///tmp/store0", 1000, 1000},
		{"alpine-latest.fl", 524, 99, 91, 334, 7793011, 96, 89, "dir:///tmp/store0", 1000, 1000},
		{"redis-latest.fl", 4266, 462, 3294, 510, 117293581, 3389, 3300, "dir:///tmp/store0", 1000, 1000},
		{"alpine-e2e.fl", 527, 100, 92, 335, 7829519, 97, 90, "dir:///tmp/rfs-e2e-tests/store", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r := openTestdata(t, tt.file)
			c, err := r.Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := Counts{Files: tt.files, Dirs: tt.dirs, Symlinks: tt.symlink, Bytes: tt.bytes}
			if c != want || c.Files+c.Dirs+c.Symlinks+c.Others != tt.inodes {
				t.Errorf("counts = %+v, want %+v (%d inodes)", c, want, tt.inodes)
			}
			rows, ids := 0, map[[HashSize]byte]bool{}
			if err := r.EachBlock(ctx, func(_ int64, b Block) error {
				rows++
				ids[b.ID] = true
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if rows != tt.blockRows || len(ids) != tt.distinctIDs {
				t.Errorf("block rows %d / distinct ids %d, want %d / %d", rows, len(ids), tt.blockRows, tt.distinctIDs)
			}
			routes, err := r.Routes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(routes) != 1 || routes[0] != (store.Route{Start: 0, End: 255, URL: tt.route}) {
				t.Errorf("routes = %+v", routes)
			}
			tags, err := r.Tags(ctx)
			if err != nil || len(tags) != 0 {
				t.Errorf("tags = %v, %v", tags, err)
			}
			root, err := r.Inode(ctx, RootIno)
			if err != nil {
				t.Fatal(err)
			}
			if root.Name != "/" || root.Parent != 0 || root.UID != tt.uid || root.GID != tt.gid {
				t.Errorf("root = %+v", root)
			}
			// Every regular file has ceil(size/512 KiB) blocks.
			if err := r.Walk(ctx, func(p string, in *Inode) error {
				if in.Type() != TypeRegular {
					return nil
				}
				bs, err := r.Blocks(ctx, in.Ino)
				if err != nil {
					return err
				}
				if uint64(len(bs)) != blocksFor(in.Size) {
					t.Errorf("%s: %d blocks for %d bytes", p, len(bs), in.Size)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSampleGID: /etc/shadow of alpine-e2e.fl is root:shadow (0:42); rfs's
// reader would report gid 0 (it reads gid from the uid column).
func TestSampleGID(t *testing.T) {
	r := openTestdata(t, "alpine-e2e.fl")
	shadow, err := r.LookupPath(ctx, "/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	if shadow.UID != 0 || shadow.GID != 42 {
		t.Errorf("shadow uid:gid = %d:%d, want 0:42", shadow.UID, shadow.GID)
	}
}

func TestSampleSymlink(t *testing.T) {
	r := openTestdata(t, "hello-world-latest.fl")
	mtab, err := r.LookupPath(ctx, "/etc/mtab")
	if err != nil {
		t.Fatal(err)
	}
	if mtab.Type() != TypeSymlink || string(mtab.Data) != "/proc/mounts" {
		t.Errorf("mtab = %+v", mtab)
	}
	if _, err := r.LookupPath(ctx, "/etc/missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Lookup(missing) = %v", err)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestTreeGolden: the golden file is the output spec §5 derived from rfs's
// walk and TreeVisitor.
func TestTreeGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := Tree(&buf, filepath.Join("testdata", "hello-world-latest.fl")); err != nil {
		t.Fatal(err)
	}
	golden(t, "hello-world-latest.tree", buf.Bytes())
}

func TestInspect(t *testing.T) {
	var buf bytes.Buffer
	fl := filepath.Join("testdata", "alpine-latest.fl")
	if err := Inspect(&buf, fl); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	wantTail := "Flist Inspection: " + fl + "\n==================\nFiles: 91\nDirectories: 99\nSymlinks: 334\nTotal size: 7793011 bytes\n"
	if !strings.HasSuffix(out, wantTail) {
		t.Errorf("summary:\n%s\nwant:\n%s", out[max(0, len(out)-200):], wantTail)
	}
	wantEntry := "Path: /etc/alpine-release\n  Type: Regular File\n  Inode: "
	if !strings.Contains(out, wantEntry) || !strings.Contains(out, "  Mode: 0100644\n  Permissions: 0644\n") {
		t.Error("per-inode entries are not in rfs's format")
	}
	if n := strings.Count(out, "  ---\n"); n != 524 {
		t.Errorf("%d entries, want 524", n)
	}

	buf.Reset()
	if err := Inspect(&buf, filepath.Join("testdata", "hello-world-latest.fl")); err != nil {
		t.Fatal(err)
	}
	golden(t, "hello-world-latest.inspect", buf.Bytes())
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "text.fl")
	if err := os.WriteFile(notDB, bytes.Repeat([]byte("not sqlite "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(notDB); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open(text file) = %v, want ErrCorrupt", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.fl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}
}
