// Package container runs the build inside the builder image (the
// repository's Containerfile: Alpine with Go, Rust and the musl target,
// build-base, kmod, xz, cpio, upx) with podman or docker, the repository
// mounted at its own path so every path in configs and logs stays valid.
// With podman run by a normal user the container is rootless: the
// container's root is the caller, and files it writes belong to the caller.
// Environment variables are passed by name only, so their values (secrets
// included) never appear on a command line or in the image.
package container

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// ImageName is the builder image's repository name; the tag is derived from
// the Containerfile's content, so editing it builds a new image.
const ImageName = "localhost/zosbuilder-builder"

// Options configure the builder image and runs in it.
type Options struct {
	// Runtime is CONTAINER_RUNTIME: podman or docker.
	Runtime string
	// Program is the runtime's executable; empty means Runtime looked up
	// on PATH.
	Program string
	// ProjectRoot is the repository, mounted read-write at the same path
	// and used as the working directory.
	ProjectRoot string
	// Containerfile is the image definition; empty means
	// ProjectRoot/Containerfile.
	Containerfile string
	// Env names environment variables to pass through (values are taken
	// from this process's environment by the runtime, never written out).
	Env []string
	// Set are NAME=VALUE pairs the command sees instead of this process's
	// value. They are put in the runtime's own environment and passed by
	// name like Env, so this process's environment is left alone.
	Set []string
	// Mounts are extra host:container[:options] bind mounts, e.g. a
	// CACHE_DIR outside the repository.
	Mounts []string
	// Terminal allocates a TTY (progress bars) when set.
	Terminal bool
}

func (o Options) program() string {
	if o.Program != "" {
		return o.Program
	}
	return o.Runtime
}

func (o Options) containerfile() string {
	if o.Containerfile != "" {
		return o.Containerfile
	}
	return filepath.Join(o.ProjectRoot, "Containerfile")
}

func (o Options) check() error {
	if o.Runtime != "podman" && o.Runtime != "docker" {
		return fmt.Errorf("container runtime %q: want podman or docker", o.Runtime)
	}
	if !filepath.IsAbs(o.ProjectRoot) {
		return fmt.Errorf("container: project root %q must be absolute", o.ProjectRoot)
	}
	return nil
}

// Image returns the image reference for the Containerfile's current
// content.
func Image(opt Options) (string, error) {
	b, err := os.ReadFile(opt.containerfile())
	if err != nil {
		return "", fmt.Errorf("builder image: %w", err)
	}
	sum := sha256.Sum256(b)
	return ImageName + ":" + hex.EncodeToString(sum[:6]), nil
}

// BuildArgs is the command line (without the program) that builds the
// image: `build -t IMAGE -f Containerfile ProjectRoot`.
func BuildArgs(opt Options, image string) []string {
	return []string{"build", "--tag", image, "--file", opt.containerfile(), opt.ProjectRoot}
}

// RunArgs is the command line (without the program) that runs command in
// the image with the repository mounted.
func RunArgs(opt Options, image string, command []string) []string {
	args := []string{"run", "--rm", "--interactive", "--network", "host",
		// SELinux hosts would deny the bind mounts; relabelling the
		// repository (:Z) would be slow and change the host's labels.
		"--security-opt", "label=disable",
		"--volume", opt.ProjectRoot + ":" + opt.ProjectRoot,
		"--workdir", opt.ProjectRoot,
		// Keep the Go and Cargo caches between runs.
		"--volume", "zosbuilder-go:/root/go",
		"--volume", "zosbuilder-cargo-registry:/root/.cargo/registry",
	}
	if opt.Terminal {
		args = append(args, "--tty")
	}
	for _, m := range opt.Mounts {
		args = append(args, "--volume", m)
	}
	for _, e := range opt.Env {
		args = append(args, "--env", e)
	}
	for _, kv := range opt.Set {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(opt.Env, name) {
			args = append(args, "--env", name)
		}
	}
	args = append(args, image)
	return append(args, command...)
}

// EnsureImage builds the image unless the runtime already has the tag of
// the current Containerfile, and returns the tag.
func EnsureImage(ctx context.Context, opt Options) (string, error) {
	if err := opt.check(); err != nil {
		return "", err
	}
	image, err := Image(opt)
	if err != nil {
		return "", err
	}
	if exec.CommandContext(ctx, opt.program(), "image", "inspect", image).Run() == nil {
		return image, nil
	}
	if err := runInherit(ctx, opt.program(), BuildArgs(opt, image)); err != nil {
		return "", fmt.Errorf("build builder image %s: %w", image, err)
	}
	return image, nil
}

// Run runs command (e.g. go run magefile.go build) in the builder image,
// building the image first when needed. Its output goes to this process's
// standard output and error.
func Run(ctx context.Context, opt Options, command []string) error {
	if len(command) == 0 {
		return errors.New("container run: no command")
	}
	image, err := EnsureImage(ctx, opt)
	if err != nil {
		return err
	}
	if err := runInherit(ctx, opt.program(), RunArgs(opt, image, command), opt.Set...); err != nil {
		return fmt.Errorf("%s run %s: %w", opt.Runtime, strings.Join(command, " "), err)
	}
	return nil
}

// runInherit runs program with this process's standard streams and
// environment, plus set (NAME=VALUE, overriding).
func runInherit(ctx context.Context, program string, args []string, set ...string) error {
	cmd := exec.CommandContext(ctx, program, args...)
	if len(set) > 0 {
		cmd.Env = append(os.Environ(), set...)
	}
	cmd.Stdin = os.Stdin
	cmd.Stdout = os.Stdout
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	if err := cmd.Run(); err != nil {
		if tail := lastLine(stderr.String()); tail != "" {
			return fmt.Errorf("%w: %s", err, tail)
		}
		return err
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
