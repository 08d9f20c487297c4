// Package hosttools knows the programs the build runs on the host, with the
// Debian and Alpine packages that provide them, and checks them up front so
// a build fails at once with one message naming everything to install,
// instead of failing halfway with "command not found". Each build stage
// declares the tools it needs in its spec (stage.Stage.Tools).
package hosttools

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrMissing is wrapped by Check's error.
var ErrMissing = errors.New("missing host tools")

// Tool is a program looked up on PATH.
type Tool struct {
	Name   string // the program, as looked up on PATH
	Debian string // the Debian package that provides it
	Alpine string // the Alpine package that provides it
}

// known lists the tools the build may run, by program name, with their
// packages.
func known() map[string]Tool {
	tools := map[string]Tool{}
	for _, t := range []Tool{
		{"git", "git", "git"},
		{"cargo", "cargo (or rustup)", "rustup (then rustup-init)"},
		{"go", "golang-go", "go"},
		{"make", "make", "make"},
		{"cc", "gcc", "build-base"},
		{"sh", "dash", "busybox"},
		{"strip", "binutils", "binutils"},
		{"flex", "flex", "flex"},
		{"bison", "bison", "bison"},
		{"bc", "bc", "bc"},
		{"perl", "perl", "perl"},
		{"xz", "xz-utils", "xz"},
		{"depmod", "kmod", "kmod"},
		{"upx", "none in Debian 12 (upx-ucl in later releases)", "upx"},
		{"ccache", "ccache", "ccache"},
		{"podman", "podman", "podman"},
		{"docker", "docker.io", "docker"},
	} {
		tools[t.Name] = t
	}
	return tools
}

// Named returns the named tools with their packages. A build stage declares
// the tools it needs with it (stage.Stage.Tools); a name that is not listed
// here comes back without packages, which the pipeline's tests reject.
func Named(names ...string) []Tool {
	k := known()
	out := make([]Tool, len(names))
	for i, n := range names {
		out[i] = k[n]
		out[i].Name = n
	}
	return out
}

// ForBuild returns the tools a component BUILD kind (cargo-musl, go, make,
// script, none) runs.
func ForBuild(kind string) []Tool {
	switch kind {
	case "cargo-musl":
		return Named("cargo", "cc")
	case "go":
		return Named("go")
	case "make":
		return Named("make", "cc")
	case "script":
		return Named("sh")
	}
	return nil
}

// ForRuntime returns the container runtime's tool (podman, docker).
func ForRuntime(runtime string) []Tool {
	switch runtime {
	case "podman", "docker":
		return Named(runtime)
	}
	return nil
}

// Check looks every tool up on PATH and returns one error naming each
// missing tool with its packages, or nil. Duplicates are checked once.
func Check(tools []Tool) error {
	return check(tools, exec.LookPath)
}

func check(tools []Tool, look func(string) (string, error)) error {
	seen := map[string]bool{}
	var missing []string
	for _, t := range tools {
		if seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		if _, err := look(t.Name); err != nil {
			missing = append(missing, fmt.Sprintf("  %s (Debian: apt-get install %s; Alpine: apk add %s)", t.Name, t.Debian, t.Alpine))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: install them, or set CONTAINER_RUNTIME=podman|docker to build in the builder image:\n%s",
		ErrMissing, strings.Join(missing, "\n"))
}
