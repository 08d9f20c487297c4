package components

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
)

// goEnv is the environment of every go build and of the go list that finds
// its inputs: static, for the image's platform.
var goEnv = []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}

// Inputs lists the files and folders on this machine whose content the
// builds of comps read, for the stage fingerprint (remote git and release
// sources are pinned by their sources.conf line instead). A local go
// component reads exactly the Go files of the packages it links from its
// own source tree, and its go.mod and go.sum (which pin everything else):
// so `local rfs . - go:./cmd/rfs ...` rebuilds when the mounter's code
// changes, not when anything else in the project does. Other local
// components read their whole SOURCE; script builds read their script.
func Inputs(ctx context.Context, comps []Component, projectRoot string) ([]string, error) {
	var in []string
	var errs []error
	for _, c := range comps {
		if c.Build.Kind == Script {
			in = append(in, resolve(projectRoot, c.Build.Arg))
		}
		if c.Type != Local {
			continue
		}
		src := resolve(projectRoot, c.Source)
		if c.Build.Kind != Go {
			in = append(in, src)
			continue
		}
		files, err := goInputs(ctx, src, filepath.Join(src, c.Build.Dir), c.Build.Arg)
		if err != nil {
			errs = append(errs, fmt.Errorf("component %s (%s): inputs: %w", c.Name, c.Where(), err))
			continue
		}
		in = append(in, files...)
	}
	return in, errors.Join(errs...)
}

func resolve(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

// goPackage is what goInputs reads of `go list -json`.
type goPackage struct {
	Dir                                            string
	Standard                                       bool
	GoFiles, SFiles, HFiles, SysoFiles, EmbedFiles []string
	Module                                         *struct {
		Main  bool
		GoMod string
	}
}

// goInputs lists the files of pkg (built in dir) and of the packages it
// links that lie inside src (its own module, and a vendor folder if it has
// one), plus the main module's go.mod and go.sum.
func goInputs(ctx context.Context, src, dir, pkg string) ([]string, error) {
	if pkg == "" {
		pkg = "."
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-deps",
		"-json=Dir,Standard,GoFiles,SFiles,HFiles,SysoFiles,EmbedFiles,Module", "--", pkg)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), goEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps %s: %w: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	var files []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			files = append(files, p)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list -deps %s: %w", pkg, err)
		}
		if p.Module != nil && p.Module.Main && p.Module.GoMod != "" {
			add(p.Module.GoMod)
			add(filepath.Join(filepath.Dir(p.Module.GoMod), "go.sum"))
		}
		if rel, err := filepath.Rel(src, p.Dir); p.Standard || err != nil || strings.HasPrefix(rel, "..") {
			continue // the standard library and the module cache: pinned by the toolchain and go.sum
		}
		for _, list := range [][]string{p.GoFiles, p.SFiles, p.HFiles, p.SysoFiles, p.EmbedFiles} {
			for _, f := range list {
				add(filepath.Join(p.Dir, f))
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("go list -deps %s: no package files inside %s", pkg, src)
	}
	return files, nil
}
