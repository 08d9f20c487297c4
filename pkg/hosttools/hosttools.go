// Package hosttools declares the programs each build stage needs on the
// host, with the Debian and Alpine packages that provide them, and checks
// them up front so a build fails at once with one message naming everything
// to install, instead of failing halfway with "command not found".
package hosttools

import (
	"errors"
	"fmt"
	"os/exec"
	"sort"
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
		{"qemu-system-x86_64", "qemu-system-x86", "qemu-system-x86_64"},
		{"upx", "none in Debian 12 (upx-ucl in later releases)", "upx"},
		{"ccache", "ccache", "ccache"},
		{"podman", "podman", "podman"},
		{"docker", "docker.io", "docker"},
	} {
		tools[t.Name] = t
	}
	return tools
}

// lookup returns the named known tools.
func lookup(names ...string) []Tool {
	k := known()
	out := make([]Tool, len(names))
	for i, n := range names {
		out[i] = k[n]
	}
	return out
}

// stageTools maps each stage to the tools it cannot run without. Stages
// done in Go (extraction, cpio, flists) need nothing, and apk is
// bootstrapped when missing. Component builds also need tools by build
// kind: see ForBuild.
func stageTools() map[string][]string {
	return map[string][]string{
		"components_build": {"git"},
		"components_copy":  {"strip"},
		"kernel_modules":   {"make", "cc", "flex", "bison", "bc", "perl", "depmod"},
		"kernel_build":     {"make", "cc", "flex", "bison", "bc", "perl", "depmod"},
		"modules_copy":     {"depmod"},
		"boot_test":        {"qemu-system-x86_64"},
	}
}

// ForStage returns the tools the named stage needs (none for unknown or
// pure-Go stages).
func ForStage(stage string) []Tool { return lookup(stageTools()[stage]...) }

// Stages lists the stages that need host tools, sorted.
func Stages() []string {
	stages := stageTools()
	names := make([]string, 0, len(stages))
	for s := range stages {
		names = append(names, s)
	}
	sort.Strings(names)
	return names
}

// ForBuild returns the tools a component BUILD kind (cargo-musl, go, make,
// script, none) runs.
func ForBuild(kind string) []Tool {
	switch kind {
	case "cargo-musl":
		return lookup("cargo", "cc")
	case "go":
		return lookup("go")
	case "make":
		return lookup("make", "cc")
	case "script":
		return lookup("sh")
	}
	return nil
}

// ForCompileCache returns the compile cache's tool (COMPILE_CACHE=ccache).
func ForCompileCache() []Tool { return lookup("ccache") }

// ForRuntime returns the container runtime's tool (podman, docker).
func ForRuntime(runtime string) []Tool {
	switch runtime {
	case "podman", "docker":
		return lookup(runtime)
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

// Markdown returns the stage table for documentation.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| stage | tool | Debian package | Alpine package |\n|---|---|---|---|\n")
	row := func(stage string, t Tool) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", stage, t.Name, t.Debian, t.Alpine)
	}
	for _, s := range Stages() {
		for _, t := range ForStage(s) {
			row(s, t)
		}
	}
	for _, k := range []string{"cargo-musl", "go", "make", "script"} {
		for _, t := range ForBuild(k) {
			row("components_build ("+k+")", t)
		}
	}
	for _, t := range lookup("xz", "upx", "podman", "docker") {
		row("optional", t)
	}
	return b.String()
}
