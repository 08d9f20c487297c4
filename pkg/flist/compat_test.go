package flist

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

func packSmall(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	makeTree(t, src)
	fl := filepath.Join(t.TempDir(), "compat.fl")
	if _, err := Pack(ctx, src, fl, PackOptions{Store: store.NewDir(t.TempDir())}); err != nil {
		t.Fatal(err)
	}
	return fl
}

func sqlite3(t *testing.T, fl, query string) string {
	t.Helper()
	bin := testutil.RequireTool(t, "sqlite3")
	out, err := exec.Command(bin, "file:"+fl+"?immutable=1", query).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %q: %v: %s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestFileFormat checks our flist with the sqlite3 CLI as an independent
// reader: the storage classes rfs's reader demands, journal mode DELETE,
// 4096-byte pages, and a sqlite_master identical to an rfs-made flist's.
func TestFileFormat(t *testing.T) {
	fl := packSmall(t)
	checks := []struct{ query, want string }{
		{"select count(*) from block where typeof(id) != 'blob' or length(id) != 32 or typeof(key) != 'blob' or length(key) != 32", "0"},
		{"select count(*) from extra where typeof(data) != 'blob'", "0"},
		{"select count(*) from inode where typeof(name) != 'text'", "0"},
		{"select count(*) from inode where typeof(parent) != 'integer' or typeof(size) != 'integer' or typeof(uid) != 'integer' " +
			"or typeof(gid) != 'integer' or typeof(mode) != 'integer' or typeof(rdev) != 'integer' or typeof(ctime) != 'integer' " +
			"or typeof(mtime) != 'integer'", "0"},
		{"select count(*) from route where typeof(start) = 'integer' and typeof(end) = 'integer' and typeof(url) = 'text'", "1"},
		{"select ino || ' ' || parent || ' ' || name from inode where ino = 1", "1 0 /"},
		{"select count(*) from extra e join inode i on i.ino = e.ino where i.mode & 61440 != 40960", "0"},
		{"select count(*) from tag", "0"},
		{"pragma page_size", "4096"},
		{"pragma journal_mode", "delete"},
		{"select seq = (select max(ino) from inode) from sqlite_sequence where name = 'inode'", "1"},
	}
	for _, c := range checks {
		if got := sqlite3(t, fl, c.query); got != c.want {
			t.Errorf("%s = %s, want %s", c.query, got, c.want)
		}
	}
	head := make([]byte, 20)
	f, err := os.Open(fl)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(head); err != nil {
		t.Fatal(err)
	}
	if head[18] != 1 || head[19] != 1 {
		t.Errorf("header bytes 18/19 = %d/%d, want 1/1 (rollback journal)", head[18], head[19])
	}
	const master = "select type || '|' || name || '|' || tbl_name || '|' || coalesce(sql, '') from sqlite_master order by name"
	abs, _ := filepath.Abs(filepath.Join("testdata", "alpine-latest.fl"))
	if ours, rfs := sqlite3(t, fl, master), sqlite3(t, abs, master); ours != rfs {
		t.Errorf("sqlite_master differs from rfs's:\n%s\nrfs:\n%s", ours, rfs)
	}
}

// TestReadWALFlist: flists of rfs v2.0.0-v2.0.2 are WAL-mode databases. One
// is made here with the sqlite3 CLI, then read without creating -wal or -shm
// files next to it.
func TestReadWALFlist(t *testing.T) {
	src := packSmall(t)
	fl := filepath.Join(t.TempDir(), "wal.fl")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fl, b, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := testutil.RequireTool(t, "sqlite3")
	if out, err := exec.Command(bin, fl, "pragma journal_mode=wal").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "wal" {
		t.Fatalf("convert to WAL: %v: %s", err, out)
	}
	head, err := os.ReadFile(fl)
	if err != nil {
		t.Fatal(err)
	}
	if head[18] != 2 || head[19] != 2 {
		t.Fatalf("header bytes 18/19 = %d/%d, want 2/2", head[18], head[19])
	}
	if err := os.Chmod(fl, 0o444); err != nil {
		t.Fatal(err)
	}
	want := treeOf(t, src)
	if got := treeOf(t, fl); got != want {
		t.Errorf("WAL flist reads differently:\n%s\nwant:\n%s", got, want)
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Stat(fl + suffix); err == nil {
			t.Errorf("reading created %s%s", fl, suffix)
		}
	}
}

func treeOf(t *testing.T, fl string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Inspect(&buf, fl); err != nil {
		t.Fatal(err)
	}
	// The summary names the file; compare the entries only.
	s := buf.String()
	return s[:strings.LastIndex(s, "Flist Inspection:")]
}
