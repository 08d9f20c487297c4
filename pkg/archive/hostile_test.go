package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// entry is one tar member of a test archive.
type entry struct {
	name string
	typ  byte
	body string
	link string
	mode int64
}

func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func hardlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeLink, link: target, mode: 0o644}
}

func makeTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode,
			Size: int64(len(e.body)), ModTime: time.Unix(1600000000, 0), Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// snapshot records every path below dir except skip, with file contents and
// link targets, so a test can prove nothing outside the root changed.
func snapshot(t *testing.T, dir, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[p] = "-> " + l
		case d.Type().IsRegular():
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		default:
			out[p] = d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(m map[string]string) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func TestHostileArchives(t *testing.T) {
	long := strings.Repeat("x", 300)
	deep := strings.Repeat(strings.Repeat("d", 200)+"/", 25) + "f"
	tests := []struct {
		name    string
		entries func(outside string) []entry
		// pre prepares the root before extraction (pre-existing content).
		pre func(t *testing.T, root, outside string)
		// bad is the entry the error must name.
		bad string
		// unsafe says the error wraps ErrUnsafe.
		unsafe bool
	}{
		{
			name:    "absolute path",
			entries: func(o string) []entry { return []entry{file(o+"/abs", "pwned")} },
			bad:     "/abs", unsafe: true,
		},
		{
			name:    "dot-dot",
			entries: func(o string) []entry { return []entry{file("../outside/dotdot", "pwned")} },
			bad:     "../outside/dotdot", unsafe: true,
		},
		{
			name:    "dot-dot in the middle",
			entries: func(o string) []entry { return []entry{dir("a"), file("a/../../outside/mid", "pwned")} },
			bad:     "a/../../outside/mid", unsafe: true,
		},
		{
			name: "symlink to an absolute directory (like /etc) then a file through it",
			entries: func(o string) []entry {
				return []entry{symlink("etc", o), file("etc/passwd", "root::0:0::/:/bin/sh")}
			},
			bad: "etc/passwd", unsafe: true,
		},
		{
			name:    "relative symlink climbing out of the root",
			entries: func(o string) []entry { return []entry{symlink("up", "../outside"), file("up/file", "pwned")} },
			bad:     "up", unsafe: true,
		},
		{
			name: "symlink chain escaping",
			entries: func(o string) []entry {
				// a/s -> .. is the root (allowed); t -> a/s/../.. stays inside
				// lexically but leaves the root when followed.
				return []entry{dir("a"), symlink("a/s", ".."), symlink("t", "a/s/../.."), file("t/outside/file", "pwned")}
			},
			bad: "t/outside/file", unsafe: true,
		},
		{
			name:    "hard link to outside by dot-dot",
			entries: func(o string) []entry { return []entry{hardlink("h", "../outside/file")} },
			bad:     "h", unsafe: true,
		},
		{
			name:    "hard link to an absolute path",
			entries: func(o string) []entry { return []entry{hardlink("h", o+"/file")} },
			bad:     "h", unsafe: true,
		},
		{
			name: "hard link through a symlink",
			entries: func(o string) []entry {
				return []entry{symlink("s", o), hardlink("h", "s/file"), file("h", "pwned")}
			},
			bad: "h", unsafe: true,
		},
		{
			name: "hard link to a symlink",
			entries: func(o string) []entry {
				return []entry{symlink("s", o+"/file"), hardlink("h", "s")}
			},
			bad: "h", unsafe: true,
		},
		{
			name:    "very long component",
			entries: func(o string) []entry { return []entry{file(long, "x")} },
			bad:     long, unsafe: true,
		},
		{
			name:    "very long path",
			entries: func(o string) []entry { return []entry{file(deep, "x")} },
			bad:     deep, unsafe: true,
		},
		{
			name: "duplicate entry: symlink then a file of the same name",
			entries: func(o string) []entry {
				return []entry{symlink("f", o+"/file"), file("f", "pwned")}
			},
			bad: "f", unsafe: true,
		},
		{
			name:    "duplicate regular files",
			entries: func(o string) []entry { return []entry{file("f", "one"), file("f", "two")} },
			bad:     "f", unsafe: true,
		},
		{
			name: "directory replaced by a symlink",
			entries: func(o string) []entry {
				return []entry{dir("d"), symlink("d", o), file("d/file", "pwned")}
			},
			bad: "d", unsafe: true,
		},
		{
			name: "implicit directory replaced by a symlink",
			entries: func(o string) []entry {
				return []entry{file("d/a", "a"), symlink("d", o), file("d/file", "pwned")}
			},
			bad: "d", unsafe: true,
		},
		{
			name:    "pre-existing symlink in the root",
			entries: func(o string) []entry { return []entry{file("pre/file", "pwned")} },
			pre: func(t *testing.T, root, o string) {
				if err := os.Symlink(o, filepath.Join(root, "pre")); err != nil {
					t.Fatal(err)
				}
			},
			bad: "pre/file", unsafe: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			outside := filepath.Join(parent, "outside")
			for _, d := range []string{root, outside} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(outside, "file"), []byte("original"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.pre != nil {
				tt.pre(t, root, outside)
			}
			before := snapshot(t, parent, root)
			err := ExtractTar(context.Background(), bytes.NewReader(makeTar(t, tt.entries(outside))), root, Options{})
			if err == nil {
				t.Fatal("hostile archive extracted without error")
			}
			if !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("error %q does not name the entry %q", err, tt.bad)
			}
			if tt.unsafe && !errors.Is(err, ErrUnsafe) {
				t.Errorf("error %q does not wrap ErrUnsafe", err)
			}
			after := snapshot(t, parent, root)
			if strings.Join(keys(before), "\n") != strings.Join(keys(after), "\n") {
				t.Errorf("paths outside the root changed:\nbefore %v\nafter  %v", keys(before), keys(after))
			}
			for p, v := range before {
				if after[p] != v {
					t.Errorf("%s changed from %q to %q", p, v, after[p])
				}
			}
		})
	}
}

// TestReplacingSymlinkNeverFollowsIt extracts a file over a symlink that was
// in the root before: the symlink is replaced, its target left alone.
func TestReplacingSymlinkNeverFollowsIt(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	outsideFile := filepath.Join(parent, "victim")
	if err := os.WriteFile(outsideFile, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"f", "l", "d"} {
		if err := os.Symlink(outsideFile, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	data := makeTar(t, []entry{file("f", "new"), symlink("l", "elsewhere"), dir("d")})
	if err := ExtractTar(context.Background(), bytes.NewReader(data), root, Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outsideFile); string(b) != "original" {
		t.Fatalf("file outside the root was written through a symlink: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "f")); string(b) != "new" {
		t.Errorf("f = %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(root, "l")); l != "elsewhere" {
		t.Errorf("l -> %q", l)
	}
	if st, err := os.Lstat(filepath.Join(root, "d")); err != nil || !st.IsDir() {
		t.Errorf("d is not a directory: %v", err)
	}
}
