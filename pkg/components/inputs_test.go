package components

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// goModule writes a Go module whose cmd/hello links an internal package,
// next to files it does not build, as a git repository.
func goModule(t *testing.T, dir, commitMsg string) {
	t.Helper()
	testutil.WriteFile(t, filepath.Join(dir, "go.mod"), "module example.org/mod\n\ngo 1.21\n", 0o644)
	testutil.WriteFile(t, filepath.Join(dir, "cmd/hello/main.go"), `package main

import "example.org/mod/internal/greet"

func main() { greet.Hello() }
`, 0o644)
	testutil.WriteFile(t, filepath.Join(dir, "internal/greet/greet.go"), "package greet\n\nimport \"fmt\"\n\n// Hello greets.\nfunc Hello() { fmt.Println(\"hello\") }\n", 0o644)
	testutil.WriteFile(t, filepath.Join(dir, "internal/greet/greet_test.go"), "package greet\n", 0o644)
	testutil.WriteFile(t, filepath.Join(dir, "cmd/other/main.go"), hello("other"), 0o644)
	testutil.WriteFile(t, filepath.Join(dir, "README.md"), commitMsg, 0o644)
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", commitMsg)
}

// TestLocalGoComponent: a `local ... go:./cmd/x` component is fingerprinted
// by the files its package links, and builds byte-identical binaries from
// the same files in any folder, whatever the commit around them.
func TestLocalGoComponent(t *testing.T) {
	testutil.RequireTool(t, "go")
	ctx := context.Background()
	var artifacts [][]byte
	for i, msg := range []string{"first", "another commit, another path"} {
		src := filepath.Join(t.TempDir(), strings.Repeat("deeper/", i), "project")
		goModule(t, src, msg)
		c := Component{Type: Local, Name: "hello", Source: src, Build: BuildSpec{Kind: Go, Arg: "./cmd/hello"},
			InstallPath: "/usr/bin/hello", File: "sources.conf", Line: 1}

		in, err := Inputs(ctx, []Component{c}, "/")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"cmd/hello/main.go", "go.mod", "go.sum", "internal/greet/greet.go"}
		var got []string
		for _, p := range in {
			rel, _ := filepath.Rel(src, p)
			got = append(got, rel)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Inputs = %v, want %v", got, want)
		}

		opt := Options{WorkDir: t.TempDir()}
		if err := Build(ctx, []Component{c}, opt); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(opt.Artifact(c))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(opt.Artifact(c)).Output(); err != nil || string(out) != "hello\n" {
			t.Fatalf("built binary: %q, %v", out, err)
		}
		artifacts = append(artifacts, b)
	}
	if !bytes.Equal(artifacts[0], artifacts[1]) {
		t.Error("the same files built in two folders at two commits gave different binaries")
	}
}

// TestProjectMounterLine: the sources.conf line the README gives for the Go
// mounter parses, and its inputs are the mounter's code, not the project.
func TestProjectMounterLine(t *testing.T) {
	testutil.RequireTool(t, "go")
	const line = "local rfs . - go:./cmd/rfs /usr/bin/rfs\n"
	comps, err := Parse(strings.NewReader(line), "sources.conf")
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	in, err := Inputs(context.Background(), comps, root)
	if err != nil {
		t.Fatal(err)
	}
	has := func(rel string) bool { return slices.Contains(in, filepath.Join(root, rel)) }
	for _, rel := range []string{"cmd/rfs/main.go", "pkg/flist/mount.go", "pkg/store/retry.go", "go.mod", "go.sum"} {
		if !has(rel) {
			t.Errorf("inputs lack %s", rel)
		}
	}
	for _, rel := range []string{"README.md", "cmd/rfs/mount_test.go", "pkg/components/build.go", "magefile.go"} {
		if has(rel) {
			t.Errorf("inputs hold %s, which the mounter does not build from", rel)
		}
	}
	if readme, _ := os.ReadFile(filepath.Join(root, "README.md")); !bytes.Contains(readme, []byte(strings.TrimSpace(line))) {
		t.Errorf("README.md does not give the line %q", strings.TrimSpace(line))
	}
}
