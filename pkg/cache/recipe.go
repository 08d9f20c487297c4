package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// recipeFormat starts every recipe: changing how artifacts are made or
// packed changes it, so old artifacts are never restored by new code.
const recipeFormat = "zosbuilder-artifact 1"

// Recipe describes what made an artifact: the source revision, the build
// recipe, the toolchain and the target, and nothing that differs between
// machines (paths, run ids, the time). Its Key names the artifact in the
// store, so two machines that would build the same bytes share one artifact.
type Recipe struct {
	Stage string // the stage that makes it (kernel_modules)
	Name  string // the component, or the stage again
	lines []string
}

// NewRecipe starts the recipe of an artifact of stage; name tells the
// artifacts of one stage apart (a component's name).
func NewRecipe(stage, name string) *Recipe {
	return &Recipe{Stage: stage, Name: name}
}

// Add records one input. A multi-line value is kept with its lines
// indented, so no value can imitate another field.
func (r *Recipe) Add(field, value string) *Recipe {
	value = strings.TrimSpace(value)
	value = strings.ReplaceAll(value, "\n", "\n  ")
	r.lines = append(r.lines, field+": "+value)
	return r
}

// String is the recipe as text, in the order the inputs were added; the
// manifest keeps it so `mage cache:status` can say what an artifact is.
func (r *Recipe) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nstage: %s\nname: %s\n", recipeFormat, r.Stage, r.Name)
	for _, l := range r.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// Key is the sha256 of String, in hex.
func (r *Recipe) Key() string {
	sum := sha256.Sum256([]byte(r.String()))
	return hex.EncodeToString(sum[:])
}

// ToolVersion runs a tool's version command (gcc --version, rustc -vV) in
// dir ("" for the current one: rustup picks the toolchain by folder) and
// returns what it printed, the toolchain identity a recipe records.
func ToolVersion(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "LC_ALL=C")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("toolchain identity: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// AddTool records as field what ToolVersion says, or "not installed" for
// a tool that is not on PATH (a build that needed it would fail anyway).
func (r *Recipe) AddTool(ctx context.Context, dir, field, name string, args ...string) error {
	v, err := ToolVersion(ctx, dir, name, args...)
	if errors.Is(err, exec.ErrNotFound) {
		v, err = "not installed", nil
	}
	if err != nil {
		return err
	}
	r.Add(field, v)
	return nil
}
