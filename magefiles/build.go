//go:build mage

package main

import (
	"context"
	"os"

	"github.com/threefoldtech/zosbuilder/internal/pipeline"
)

// Default is what a bare `mage` runs.
var Default = Build

// Aliases keep the original stage vocabulary at hand.
var Aliases = map[string]any{
	"clean:all": CleanAll,
}

// Build runs every stage and produces dist/vmlinuz.efi (FORCE=1 reruns all, PROFILE=name selects config/profiles/name).
func Build(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.Build(ctx)
}

// Status prints every stage's state: done, stale (and why), never run or failed.
func Status() error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.Status(os.Stdout)
}

// Reset forgets a stage and everything after it, so the next build reruns them (build.sh --rebuild-from STAGE).
func Reset(stageName string) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.Reset(stageName)
}

// Clean removes the work folders, stage markers and dist/ (the download cache stays; see clean:all).
func Clean() error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.Clean(false)
}

// CleanAll is clean plus the download cache (mage clean:all).
func CleanAll() error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.Clean(true)
}

// Config prints every build.conf key with its effective value and where it came from.
func Config() error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.PrintConfig(os.Stdout)
}

// Graph prints the stage graph as Mermaid, generated from the pipeline table (for the README).
func Graph() error {
	pipeline.Graph(os.Stdout)
	return nil
}
