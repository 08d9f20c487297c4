package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/s3test"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// machine is one build machine: its own work folder, state and log.
type machine struct {
	work  string
	cache *Cache
	logs  *bytes.Buffer
}

func newMachine(t *testing.T, opt Options) *machine {
	t.Helper()
	var logs bytes.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	opt.Log = l
	opt.StateDir = t.TempDir()
	c, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	return &machine{work: t.TempDir(), cache: c, logs: &logs}
}

// artifact is a folder with files, a symlink, an empty folder and a file
// left out, plus a single-file part.
func (m *machine) artifact(recipe *Recipe) Artifact {
	return Artifact{Recipe: recipe, Parts: []Part{
		{Name: "tree", Path: filepath.Join(m.work, "out", "tree"), Skip: func(rel string, d fs.DirEntry) bool {
			return strings.HasSuffix(rel, ".skip") || rel == "skipped-dir"
		}, Relocate: &Relocation{Root: m.work, Files: func(rel string) bool { return strings.HasSuffix(rel, ".cmd") }}},
		{Name: "bin", Path: filepath.Join(m.work, "bin", "tool")},
	}}
}

var mtime = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

func (m *machine) build(ctx context.Context) error {
	tree := filepath.Join(m.work, "out", "tree")
	for name, body := range map[string]string{"a.txt": "alpha", "sub/b.o": "object", "x.skip": "left out", "skipped-dir/c": "no",
		"sub/.b.o.cmd": "cmd_" + m.work + "/out/tree/sub/b.o := gcc -I" + m.work + "/include\n", "path.txt": m.work} {
		p := filepath.Join(tree, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
			return err
		}
		os.Chtimes(p, mtime, mtime)
	}
	os.MkdirAll(filepath.Join(tree, "empty"), 0o700)
	os.Symlink("../a.txt", filepath.Join(tree, "sub", "link"))
	os.MkdirAll(filepath.Join(m.work, "bin"), 0o755)
	return os.WriteFile(filepath.Join(m.work, "bin", "tool"), []byte("#!/bin/sh\n"), 0o755)
}

func recipe(source string) *Recipe {
	return NewRecipe("kernel_modules", "kernel_modules").Add("source", source).Add("tool", "gcc 12\nline two")
}

func TestDoPublishesAndAnotherMachineRestores(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := newMachine(t, Options{URL: "dir://" + dir, Push: true})
	b := newMachine(t, Options{URL: "dir://" + dir, Push: true})
	builds := 0
	buildOn := func(m *machine) func(context.Context) error {
		return func(ctx context.Context) error { builds++; return m.build(ctx) }
	}
	if err := a.cache.Do(ctx, a.artifact(recipe("v1")), buildOn(a)); err != nil {
		t.Fatal(err)
	}
	if builds != 1 || !strings.Contains(a.logs.String(), "published") {
		t.Fatalf("first Do: %d builds; log:\n%s", builds, a.logs)
	}
	if err := b.cache.Do(ctx, b.artifact(recipe("v1")), buildOn(b)); err != nil {
		t.Fatal(err)
	}
	if builds != 1 {
		t.Fatalf("the second machine built instead of restoring; log:\n%s", b.logs)
	}
	// What was restored is what was built, times to the nanosecond.
	for _, name := range []string{"a.txt", "sub/b.o"} {
		p := filepath.Join(b.work, "out", "tree", name)
		fi, err := os.Stat(p)
		if err != nil || !fi.ModTime().Equal(mtime) || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: %v %v %v", name, err, fi.ModTime(), fi.Mode())
		}
	}
	// Recorded paths are relocated in the files asked for, and only there.
	cmd := filepath.Join(b.work, "out", "tree", "sub", ".b.o.cmd")
	if got, _ := os.ReadFile(cmd); string(got) != "cmd_"+b.work+"/out/tree/sub/b.o := gcc -I"+b.work+"/include\n" {
		t.Errorf("relocated file: %q", got)
	}
	if fi, err := os.Stat(cmd); err != nil || !fi.ModTime().Equal(mtime) {
		t.Errorf("relocation changed the mtime: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(b.work, "out", "tree", "path.txt")); string(got) != a.work {
		t.Errorf("a file not selected for relocation was changed: %q", got)
	}
	if target, err := os.Readlink(filepath.Join(b.work, "out", "tree", "sub", "link")); err != nil || target != "../a.txt" {
		t.Errorf("symlink: %q %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(b.work, "out", "tree", "empty")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("empty folder: %v %v", err, fi)
	}
	for _, skipped := range []string{"x.skip", "skipped-dir"} {
		if _, err := os.Lstat(filepath.Join(b.work, "out", "tree", skipped)); err == nil {
			t.Errorf("%s was packed although Skip leaves it out", skipped)
		}
	}
	if fi, err := os.Stat(filepath.Join(b.work, "bin", "tool")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("file part: %v %v", err, fi)
	}
	leftovers, _ := filepath.Glob(filepath.Join(b.work, "out", ".cache-*"))
	if len(leftovers) > 0 {
		t.Errorf("leftovers: %v", leftovers)
	}
	st, err := ReadStats(filepath.Dir(b.cache.stats.path))
	if err != nil || st.Hits != 1 || st.Last["kernel_modules"].Outcome != "hit" || st.Restored == 0 {
		t.Errorf("stats of the restoring machine: %+v %v", st, err)
	}
	// A different recipe is a miss.
	if err := b.cache.Do(ctx, b.artifact(recipe("v2")), buildOn(b)); err != nil || builds != 2 {
		t.Fatalf("another recipe: %d builds, %v", builds, err)
	}
	// Without push nothing is published.
	ro := newMachine(t, Options{URL: "dir://" + dir})
	if err := ro.cache.Do(ctx, ro.artifact(recipe("v3")), buildOn(ro)); err != nil {
		t.Fatal(err)
	}
	if c, _ := ro.cache.Contents(ctx); c.Artifacts["kernel_modules"] != 2 || c.Data != 2 {
		t.Errorf("contents after a read-only miss: %+v", c)
	}
}

// A damaged, truncated or missing object, or a bad manifest, is reported
// once and the stage builds locally; the local build then replaces it.
// An artifact's warnings and its "published" line go to the artifact's
// logger (the stage's, with its name), not to the cache's.
func TestArtifactLogIsTheStages(t *testing.T) {
	a := newMachine(t, Options{URL: "dir://" + t.TempDir(), Push: true})
	var stageLogs bytes.Buffer
	l := logrus.New()
	l.SetOutput(&stageLogs)
	art := a.artifact(recipe("v1"))
	art.Log = l.WithField("stage", "kernel_modules")
	if err := a.cache.Do(context.Background(), art, a.build); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stageLogs.String(), "published") || !strings.Contains(stageLogs.String(), "stage=kernel_modules") {
		t.Errorf("stage log:\n%s", stageLogs.String())
	}
	if strings.Contains(a.logs.String(), "published") {
		t.Errorf("the cache's own log has the artifact's line:\n%s", a.logs)
	}
}

func TestCorruptArtifactsAreIgnored(t *testing.T) {
	ctx := context.Background()
	damage := map[string]func(t *testing.T, root string, m manifest){
		"flipped byte": func(t *testing.T, root string, m manifest) {
			p := filepath.Join(root, m.Object)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
		},
		"truncated": func(t *testing.T, root string, m manifest) {
			os.Truncate(filepath.Join(root, m.Object), m.Size/2)
		},
		"data missing": func(t *testing.T, root string, m manifest) {
			os.Remove(filepath.Join(root, m.Object))
		},
		"manifest garbage": func(t *testing.T, root string, m manifest) {
			os.WriteFile(filepath.Join(root, manifestName(m.Stage, m.Key)), []byte("{not json"), 0o644)
		},
		"manifest names another sha": func(t *testing.T, root string, m manifest) {
			m.SHA256 = strings.Repeat("0", 64)
			m.Object = dataName(m.SHA256)
			b, _ := json.Marshal(m)
			os.WriteFile(filepath.Join(root, manifestName(m.Stage, m.Key)), b, 0o644)
		},
	}
	for name, spoil := range damage {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			a := newMachine(t, Options{URL: "dir://" + root, Push: true})
			if err := a.cache.Do(ctx, a.artifact(recipe("v1")), a.build); err != nil {
				t.Fatal(err)
			}
			m, err := a.cache.readManifest(ctx, "kernel_modules", recipe("v1").Key())
			if err != nil {
				t.Fatal(err)
			}
			spoil(t, root, m)
			b := newMachine(t, Options{URL: "dir://" + root, Push: true})
			built := false
			if err := b.cache.Do(ctx, b.artifact(recipe("v1")), func(ctx context.Context) error { built = true; return b.build(ctx) }); err != nil {
				t.Fatal(err)
			}
			if !built {
				t.Fatal("a damaged artifact was restored")
			}
			if n := strings.Count(b.logs.String(), "level=warning"); n != 1 || !strings.Contains(b.logs.String(), "building it here") {
				t.Errorf("want one warning, got %d:\n%s", n, b.logs)
			}
			// The local build published a good artifact again.
			c := newMachine(t, Options{URL: "dir://" + root})
			if err := c.cache.Do(ctx, c.artifact(recipe("v1")), func(context.Context) error {
				t.Error("the republished artifact was not restored")
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// With the S3 server gone, every Do builds locally and the build says once
// that the cache is unreachable; the secret never shows.
func TestUnreachableStoreIsSaidOnce(t *testing.T) {
	ctx := context.Background()
	srv := s3test.StartWithT(t, s3test.Options{Metadata: true})
	if err := srv.CreateBucket(ctx, "cache"); err != nil {
		t.Fatal(err)
	}
	opt := Options{URL: "s3://" + srv.Addr + "/cache/team", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Push: true}
	a := newMachine(t, opt)
	if err := a.cache.Do(ctx, a.artifact(recipe("v1")), a.build); err != nil {
		t.Fatal(err)
	}
	if n, _ := srv.Objects("cache", "team"); n != 2 {
		t.Fatalf("S3 holds %d objects, want data and manifest", n)
	}
	b := newMachine(t, opt)
	if err := b.cache.Do(ctx, b.artifact(recipe("v1")), func(context.Context) error {
		t.Error("built although S3 holds the artifact")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	c := newMachine(t, opt)
	builds := 0
	for _, v := range []string{"v1", "v2", "v3"} {
		if err := c.cache.Do(ctx, c.artifact(recipe(v)), func(ctx context.Context) error { builds++; return c.build(ctx) }); err != nil {
			t.Fatal(err)
		}
	}
	c.cache.Unreachable("redis://127.0.0.1:1", os.ErrDeadlineExceeded)
	if builds != 3 {
		t.Errorf("%d local builds, want 3", builds)
	}
	if n := strings.Count(c.logs.String(), "unreachable"); n != 1 || strings.Count(c.logs.String(), "level=warning") != 1 {
		t.Errorf("want one unreachable warning:\n%s", c.logs)
	}
	if strings.Contains(c.logs.String(), srv.SecretKey) || strings.Contains(a.logs.String(), srv.SecretKey) {
		t.Errorf("the secret is in the log")
	}
	if !c.cache.Down() {
		t.Error("Down() = false after the store failed")
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	m := newMachine(t, Options{URL: "dir://" + root, Push: true})
	now := time.Now()
	for i, v := range []string{"old", "mid", "new"} {
		if err := m.cache.Do(ctx, m.artifact(recipe(v)), m.build); err != nil {
			t.Fatal(err)
		}
		// Age the manifest: old is 40 days, mid 20, new 0.
		when := now.Add(-time.Duration(40-20*i) * 24 * time.Hour)
		os.Chtimes(filepath.Join(root, manifestName("kernel_modules", recipe(v).Key())), when, when)
	}
	// An orphan data object, old enough to be no publish in flight.
	orphan := filepath.Join(root, dataName(strings.Repeat("a", 64)))
	os.WriteFile(orphan, []byte("orphan"), 0o644)
	old := now.Add(-2 * time.Hour)
	os.Chtimes(orphan, old, old)
	// And a fresh one, which must stay.
	fresh := filepath.Join(root, dataName(strings.Repeat("b", 64)))
	os.WriteFile(fresh, []byte("fresh"), 0o644)

	res, err := m.cache.Prune(ctx, PruneOptions{MaxAge: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// The old artifact's data was published within the grace period: only
	// the old orphan goes.
	if res.Manifests != 1 || res.Data != 1 || res.Kept != 2 {
		t.Errorf("age prune: %+v", res)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a data object younger than the grace period was removed")
	}
	res, err = m.cache.Prune(ctx, PruneOptions{MaxSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifests != 2 || res.Kept != 0 || res.KeptBytes != 0 {
		t.Errorf("size prune: %+v", res)
	}
	c, err := m.cache.Contents(ctx)
	if err != nil || len(c.Artifacts) != 0 || c.Data != 4 {
		t.Errorf("contents after prune: %+v %v", c, err)
	}
	res, err = m.cache.Prune(ctx, PruneOptions{Now: now.Add(2 * time.Hour)})
	if err != nil || res.Data != 4 {
		t.Errorf("later prune of unreferenced data: %+v %v", res, err)
	}
}

func TestRecipeKey(t *testing.T) {
	a := NewRecipe("components_build", "zinit").Add("source", "tree 1").Add("build", "cargo-musl")
	b := NewRecipe("components_build", "zinit").Add("source", "tree 1").Add("build", "cargo-musl")
	if a.Key() != b.Key() || len(a.Key()) != 64 {
		t.Fatalf("same recipe, keys %s %s", a.Key(), b.Key())
	}
	for _, other := range []*Recipe{
		NewRecipe("components_build", "rfs").Add("source", "tree 1").Add("build", "cargo-musl"),
		NewRecipe("components_build", "zinit").Add("source", "tree 2").Add("build", "cargo-musl"),
		NewRecipe("components_build", "zinit").Add("source", "tree 1\nbuild: cargo-musl"),
	} {
		if other.Key() == a.Key() {
			t.Errorf("different recipe, same key:\n%s", other)
		}
	}
	if !strings.Contains(NewRecipe("s", "n").Add("tool", "a\nb").String(), "tool: a\n  b\n") {
		t.Error("multi-line values are not indented")
	}
	r := NewRecipe("s", "n")
	if err := r.AddTool(context.Background(), "", "cc", "no-such-compiler-zos", "--version"); err != nil || !strings.Contains(r.String(), "cc: not installed") {
		t.Errorf("missing tool: %v\n%s", err, r)
	}
	if err := r.AddTool(context.Background(), "", "sh", "sh", "-c", "exit 3"); err == nil {
		t.Error("a failing version command is not an error")
	}
}

func TestOpenRefusesCredentialsInURL(t *testing.T) {
	_, err := Open(Options{URL: "s3://ak:topsecret@h:9000/b"})
	if err == nil || !strings.Contains(err.Error(), "without credentials") || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("Open = %v", err)
	}
	if _, err := Open(Options{URL: "ftp://h/x"}); err == nil || !errors.Is(err, store.ErrNotSupported) {
		t.Errorf("Open ftp = %v", err)
	}
}
