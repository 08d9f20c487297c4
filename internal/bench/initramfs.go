// Package bench holds the harnesses of the `mage bench:*` targets, whose
// tables go into the README: they measure the product packages from the
// outside and are not part of them.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
	"golang.org/x/sys/unix"
)

// InitramfsShell is the reference pipeline Initramfs compares
// initramfs.Pack with.
const InitramfsShell = "find . | cpio -o -H newc | xz -9 -T0 --check=crc32"

// Initramfs packs srcDir (a large tree such as /lib/modules/<version>) with
// InitramfsShell and with initramfs.Pack's encoders and writes a Markdown
// table of output size, wall time and CPU time to w (for `mage
// bench:initramfs`). It needs find, cpio and xz; the runs are sequential so
// they do not compete for CPUs.
func Initramfs(ctx context.Context, srcDir string, w io.Writer) error {
	tmp, err := os.MkdirTemp("", "initramfs-bench-")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(tmp)

	// run packs into out and returns a note for the method column.
	type variant struct {
		name string
		run  func(out string) (string, error)
	}
	pack := func(opt initramfs.Options) func(string) (string, error) {
		return func(out string) (string, error) {
			st, err := initramfs.PackStats(ctx, srcDir, out, opt)
			if opt.Blocks == 0 && st.Blocks > 0 {
				return fmt.Sprintf(" (%d blocks)", st.Blocks), err
			}
			return "", err
		}
	}
	variants := []variant{
		{"shell: " + InitramfsShell, func(out string) (string, error) {
			cmd := exec.CommandContext(ctx, "sh", "-c", `cd "$1" && find . | cpio -o -H newc --quiet | xz -9 -T0 --check=crc32 >"$2"`, "sh", srcDir, out)
			if msg, err := cmd.CombinedOutput(); err != nil {
				return "", fmt.Errorf("%s: %w", msg, err)
			}
			return "", nil
		}},
		{"Pack, xz binary, default", pack(initramfs.Options{Compression: initramfs.CompressionXZ})},
		{"Pack, xz binary, Blocks 1", pack(initramfs.Options{Compression: initramfs.CompressionXZ, Blocks: 1})},
		{"Pack, xz binary, Blocks 2", pack(initramfs.Options{Compression: initramfs.CompressionXZ, Blocks: 2})},
		{"Pack, xz binary, Blocks 4", pack(initramfs.Options{Compression: initramfs.CompressionXZ, Blocks: 4})},
		{"Pack, Go encoder (ulikunitz/xz)", pack(initramfs.Options{Compression: initramfs.CompressionGo})},
	}
	if _, err := fmt.Fprintf(w, "Tree: %s\n\n| method | size (bytes) | size vs shell | wall time | time vs shell | CPU time |\n|---|---:|---:|---:|---:|---:|\n", srcDir); err != nil {
		return err
	}
	var refSize int64
	var refTime time.Duration
	for i, v := range variants {
		out := filepath.Join(tmp, fmt.Sprintf("%d.cpio.xz", i))
		start, cpu0 := time.Now(), cpuTime()
		note, err := v.run(out)
		if err != nil {
			return fmt.Errorf("bench %s: %w", v.name, err)
		}
		elapsed, cpu := time.Since(start), cpuTime()-cpu0
		fi, err := os.Stat(out)
		if err != nil {
			return fmt.Errorf("bench %s: %w", v.name, err)
		}
		if i == 0 {
			refSize, refTime = fi.Size(), elapsed
		}
		name := strings.ReplaceAll(v.name+note, "|", `\|`) // a pipe would end the table cell
		_, err = fmt.Fprintf(w, "| %s | %d | %+.2f%% | %.1f s | %+.0f%% | %.1f s |\n", name, fi.Size(),
			100*(float64(fi.Size())/float64(refSize)-1), elapsed.Seconds(), 100*(elapsed.Seconds()/refTime.Seconds()-1), cpu.Seconds())
		if err != nil {
			return err
		}
		os.Remove(out)
	}
	return nil
}

// cpuTime returns the user and system time of this process and of its
// waited-for children (xz, the shell pipeline): the work done, which unlike
// the wall time does not depend on what else the machine runs.
func cpuTime() time.Duration { return rusage(unix.RUSAGE_SELF) + rusage(unix.RUSAGE_CHILDREN) }
