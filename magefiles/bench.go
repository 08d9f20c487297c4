//go:build mage

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/internal/bench"
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

// Rfs measures flist packs of a ~1 GiB tree (BENCH_RFS_TREE: an existing tree instead, e.g. the firmware set; BENCH_RFS_MB: the generated size) to dir stores on disk and tmpfs and to versitygw, against the codec's ceiling, BENCH_RFS_RUNS times each (default 3, the median kept); prints the goals' ratios.
func (Bench) Rfs(ctx context.Context) error {
	e, err := load()
	if err != nil {
		return err
	}
	opt := bench.RfsOptions{TmpfsDir: "/dev/shm", Log: e.Log(), Tree: os.Getenv("BENCH_RFS_TREE")}
	mb, err := positiveEnv("BENCH_RFS_MB", "a size in MiB")
	if err != nil {
		return err
	}
	opt.TreeBytes = mb << 20
	runs, err := positiveEnv("BENCH_RFS_RUNS", "a number of runs")
	if err != nil {
		return err
	}
	opt.Runs = int(runs)
	rep, err := bench.Rfs(ctx, opt)
	if err != nil {
		return err
	}
	return rep.WriteTable(os.Stdout)
}

var errNoModulesTree = errors.New("no /lib/modules/* tree to benchmark on: set BENCH_TREE or install linux-image-amd64")

// positiveEnv reads a positive integer from the environment variable name;
// 0 when it is unset. want says what the variable holds, for the error.
func positiveEnv(name, want string) (int64, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want %s", name, v, want)
	}
	return n, nil
}
