//go:build mage

package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/internal/bench"
	"github.com/threefoldtech/zosbuilder/pkg/flist/flistbench"
)

// Bench holds benchmarks whose tables go into the README.
type Bench mg.Namespace

// Initramfs packs a large tree (BENCH_TREE, default the host's /lib/modules/<ver>) with each xz backend and the shell pipeline; prints size and time.
func (Bench) Initramfs(ctx context.Context) error {
	tree := os.Getenv("BENCH_TREE")
	if tree == "" {
		trees, _ := filepath.Glob("/lib/modules/*")
		if len(trees) == 0 {
			return errNoModulesTree
		}
		tree = trees[0]
	}
	return bench.Initramfs(ctx, tree, os.Stdout)
}

// Rfs measures flist pack throughput of a ~1 GiB tree to a dir store and to versitygw, next to the codec's single-core speed.
func (Bench) Rfs(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	rep, err := flistbench.Run(ctx, flistbench.Options{TmpfsDir: "/dev/shm", Log: e.Log()})
	if err != nil {
		return err
	}
	return rep.WriteTable(os.Stdout)
}

var errNoModulesTree = errors.New("no /lib/modules/* tree to benchmark on: set BENCH_TREE or install linux-image-amd64")
