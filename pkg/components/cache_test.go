package components

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/cache"
)

func openCache(t *testing.T, dir string) *cache.Cache {
	t.Helper()
	c, err := cache.Open(cache.Options{URL: "dir://" + dir, Push: true, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func infos(h *test.Hook) string {
	var out []string
	for _, e := range h.AllEntries() {
		out = append(out, e.Message)
	}
	return strings.Join(out, "\n")
}

// A component built on one machine is restored on another (another work
// folder, another clone of the same commit); a local change is a new key.
func TestComponentArtifactsAcrossMachines(t *testing.T) {
	repo := goRepo(t)
	store := t.TempDir()
	ctx := context.Background()
	comps := []Component{{Type: Git, Name: "hello", Source: repo, Version: "v1.0.0",
		Build: BuildSpec{Kind: Go, Arg: "./cmd/hello"}, InstallPath: "/usr/bin/hello"}}

	a := Options{WorkDir: t.TempDir(), Cache: openCache(t, store)}
	if err := Build(ctx, comps, a); err != nil {
		t.Fatal(err)
	}
	built, err := os.ReadFile(a.Artifact(comps[0]))
	if err != nil {
		t.Fatal(err)
	}

	log, hook := test.NewNullLogger()
	b := Options{WorkDir: filepath.Join(t.TempDir(), "elsewhere"), Cache: openCache(t, store), Log: log}
	if err := Build(ctx, comps, b); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(b.Artifact(comps[0])); err != nil || !bytes.Equal(got, built) {
		t.Fatalf("restored binary differs: %v", err)
	}
	if msgs := infos(hook); !strings.Contains(msgs, "hello: restored from the artifact cache") || strings.Contains(msgs, "building hello") {
		t.Errorf("log:\n%s", msgs)
	}
	if l, _ := os.ReadFile(b.LogFile(comps[0])); !strings.Contains(string(l), "restored from the artifact cache") {
		t.Errorf("component log: %s", l)
	}

	// An edit in B's checkout is built, not restored, and is published
	// under its own key.
	testutil.WriteFile(t, filepath.Join(b.WorkDir, "hello/cmd/hello/main.go"), hello("edited"), 0o644)
	hook.Reset()
	if err := Build(ctx, comps, b); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(testutil.Run(t, "", nil, b.Artifact(comps[0]))); got != "edited" {
		t.Fatalf("built %q, want the edit", got)
	}
	if !strings.Contains(infos(hook), "building hello") {
		t.Errorf("the edited component was not built:\n%s", infos(hook))
	}
	c := Options{WorkDir: t.TempDir(), Cache: openCache(t, store)}
	if err := Build(ctx, comps, c); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(testutil.Run(t, "", nil, c.Artifact(comps[0]))); got != "hello v1" {
		t.Errorf("a clean clone restored %q, want the unedited v1", got)
	}
}

// The source identity is the content: the same tree in two checkouts (and
// a local folder) gives one id, any change another.
func TestRevisionIsContent(t *testing.T) {
	repo := goRepo(t)
	ctx := context.Background()
	rev := func(dir string) string {
		t.Helper()
		b := &builder{c: Component{Name: "x"}, out: &bytes.Buffer{}}
		r, err := b.revision(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	clone := filepath.Join(t.TempDir(), "clone")
	git(t, t.TempDir(), "clone", "-q", repo, clone)
	r1 := rev(repo)
	if !strings.HasPrefix(r1, "git tree ") || rev(clone) != r1 {
		t.Fatalf("same commit, revisions %q and %q", r1, rev(clone))
	}
	testutil.WriteFile(t, filepath.Join(clone, "new.txt"), "untracked\n", 0o644)
	r2 := rev(clone)
	if r2 == r1 {
		t.Error("an untracked file does not change the revision")
	}
	if out := git(t, clone, "status", "--porcelain"); !strings.Contains(out, "new.txt") {
		t.Errorf("the checkout's index was touched: %q", out)
	}
	// A subfolder of a checkout is named by its subtree.
	if sub := rev(filepath.Join(clone, "cmd")); sub == r2 || !strings.HasPrefix(sub, "git tree ") {
		t.Errorf("subfolder revision %q", sub)
	}
	plain := t.TempDir()
	testutil.WriteFile(t, filepath.Join(plain, "a/b.txt"), "x", 0o644)
	p1 := rev(plain)
	os.Chmod(filepath.Join(plain, "a/b.txt"), 0o755)
	if p2 := rev(plain); !strings.HasPrefix(p1, "sha256 ") || p2 == p1 {
		t.Errorf("local folder revisions %q %q", p1, p2)
	}
}

// A local Go component's artifact key is the files it compiles: another
// folder, another commit, a README change or a build's work folder inside
// the project leave it alone; an edit of a linked file changes it.
func TestLocalGoSourceID(t *testing.T) {
	testutil.RequireTool(t, "go")
	ctx := context.Background()
	id := func(src string) string {
		t.Helper()
		c := Component{Type: Local, Name: "hello", Source: src, Build: BuildSpec{Kind: Go, Arg: "./cmd/hello"}}
		b := &builder{c: c, out: &bytes.Buffer{}}
		r, err := b.sourceID(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := filepath.Join(t.TempDir(), "a")
	b := filepath.Join(t.TempDir(), "deeper", "b")
	goModule(t, a, "first")
	goModule(t, b, "another commit")
	want := id(a)
	if !strings.HasPrefix(want, "go files sha256 ") || id(b) != want {
		t.Fatalf("the same files in two folders: %q and %q", want, id(b))
	}
	testutil.WriteFile(t, filepath.Join(b, "README.md"), "changed", 0o644)
	testutil.WriteFile(t, filepath.Join(b, "work/kernel/big.o"), "a build's output", 0o644)
	if id(b) != want {
		t.Error("a file the component does not compile changed its key")
	}
	testutil.WriteFile(t, filepath.Join(b, "internal/greet/greet.go"), "package greet\n\n// Hello greets.\nfunc Hello() {}\n", 0o644)
	if id(b) == want {
		t.Error("an edit of a linked file left the key alone")
	}
}
