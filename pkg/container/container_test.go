package container

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRuntime is a recording stand-in for podman/docker (no engine and no
// registry access here): it appends each invocation to $RUNTIME_RECORD,
// knows the image once it has been built, and prints the value of the
// variable the run passes through, as the container would see it.
const fakeRuntime = `#!/bin/sh
echo "$*" >> "$RUNTIME_RECORD"
case "$1" in
image) [ -e "$RUNTIME_RECORD.built" ] && exit 0; exit 1;;
build) touch "$RUNTIME_RECORD.built";;
esac
`

func setup(t *testing.T, runtime string) (Options, string) {
	t.Helper()
	dir := t.TempDir()
	prog := filepath.Join(dir, runtime)
	if err := os.WriteFile(prog, []byte(fakeRuntime), 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "repo")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "Containerfile"), []byte("FROM docker.io/library/alpine:3.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "record")
	t.Setenv("RUNTIME_RECORD", record)
	return Options{Runtime: runtime, Program: prog, ProjectRoot: root}, record
}

func TestContractRunBuildsImageOnceAndMountsRepo(t *testing.T) {
	for _, runtime := range []string{"podman", "docker"} {
		t.Run(runtime, func(t *testing.T) {
			opt, record := setup(t, runtime)
			opt.Env = []string{"S3_SECRET_KEY", "ALPINE_MIRROR"}
			t.Setenv("S3_SECRET_KEY", "hunter2-secret")
			image, err := Image(opt)
			if err != nil {
				t.Fatal(err)
			}
			cmd := []string{"go", "run", "magefile.go", "build"}
			if err := Run(context.Background(), opt, cmd); err != nil {
				t.Fatal(err)
			}
			if err := Run(context.Background(), opt, cmd); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(record)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			run := strings.Join(RunArgs(opt, image, cmd), " ")
			want := []string{
				"image inspect " + image,
				strings.Join(BuildArgs(opt, image), " "),
				run,
				"image inspect " + image,
				run,
			}
			if strings.Join(lines, "\n") != strings.Join(want, "\n") {
				t.Errorf("runtime calls:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
			}
			for _, w := range []string{"--volume " + opt.ProjectRoot + ":" + opt.ProjectRoot, "--workdir " + opt.ProjectRoot,
				"--env S3_SECRET_KEY", "--env ALPINE_MIRROR", image + " go run magefile.go build"} {
				if !strings.Contains(run, w) {
					t.Errorf("run lacks %q: %s", w, run)
				}
			}
			if strings.Contains(string(b), "hunter2") {
				t.Error("a secret's value reached the runtime's command line")
			}
			if !strings.HasPrefix(image, ImageName+":") || len(image) != len(ImageName)+13 {
				t.Errorf("image = %s", image)
			}
		})
	}
}

// Set values reach the command by name through the runtime's own
// environment; the caller's environment is left as it was.
func TestContractSetPassesValueWithoutChangingCaller(t *testing.T) {
	opt, record := setup(t, "podman")
	// This runtime also records what it would hand the container.
	script := fakeRuntime + `if [ "$1" = run ]; then echo "CONTAINER_RUNTIME=$CONTAINER_RUNTIME" >> "$RUNTIME_RECORD"; fi` + "\n"
	if err := os.WriteFile(opt.Program, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTAINER_RUNTIME", "podman")
	opt.Set = []string{"CONTAINER_RUNTIME=none"}
	if err := Run(context.Background(), opt, []string{"go", "run", "magefile.go", "build"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(record)
	if !strings.Contains(string(b), "--env CONTAINER_RUNTIME ") || !strings.Contains(string(b), "CONTAINER_RUNTIME=none\n") {
		t.Errorf("the container does not get CONTAINER_RUNTIME=none:\n%s", b)
	}
	if strings.Contains(string(b), "--env CONTAINER_RUNTIME=") {
		t.Errorf("the value went on the command line:\n%s", b)
	}
	if got := os.Getenv("CONTAINER_RUNTIME"); got != "podman" {
		t.Errorf("the caller's CONTAINER_RUNTIME became %q", got)
	}
}

func TestImageTagFollowsContainerfile(t *testing.T) {
	opt, _ := setup(t, "podman")
	a, _ := Image(opt)
	os.WriteFile(filepath.Join(opt.ProjectRoot, "Containerfile"), []byte("FROM docker.io/library/alpine:3.22\nRUN true\n"), 0o644)
	b, _ := Image(opt)
	if a == b {
		t.Error("changing the Containerfile kept the image tag")
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	opt, _ := setup(t, "podman")
	for _, o := range []Options{{Runtime: "lxc", ProjectRoot: opt.ProjectRoot}, {Runtime: "podman", ProjectRoot: "repo"}} {
		if err := Run(context.Background(), o, []string{"true"}); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := Run(context.Background(), opt, nil); err == nil {
		t.Error("empty command accepted")
	}
}

func TestContainerfileInRepository(t *testing.T) {
	b, err := os.ReadFile("../../Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"alpine:3.22", "x86_64-unknown-linux-musl", "build-base", "kmod", "xz", "cpio", "upx", "go", "rustup"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("Containerfile lacks %q", w)
		}
	}
}
