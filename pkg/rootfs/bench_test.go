package rootfs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// debianModules is the host's module tree (linux-image-amd64), a realistic
// large input.
func debianModules(b *testing.B) string {
	dirs, _ := filepath.Glob("/lib/modules/6.1.0-*")
	if len(dirs) == 0 {
		b.Skip("no /lib/modules/6.1.0-* (linux-image-amd64)")
	}
	return dirs[0]
}

func treeSize(b *testing.B, root string) int64 {
	var n int64
	filepath.WalkDir(root, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func BenchmarkFingerprint(b *testing.B) {
	root := debianModules(b)
	b.SetBytes(treeSize(b, root))
	for b.Loop() {
		if _, err := Fingerprint(root); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCleanupStripModules strips a copy of Debian's drivers/net
// modules (--strip-debug) and reports the bytes saved.
func BenchmarkCleanupStripModules(b *testing.B) {
	src := filepath.Join(debianModules(b), "kernel/drivers/net")
	var saved int64
	for b.Loop() {
		b.StopTimer()
		root := b.TempDir()
		dst := filepath.Join(root, "lib/modules/v/kernel")
		os.MkdirAll(dst, 0o755)
		if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		b.SetBytes(treeSize(b, root))
		b.StartTimer()
		rep, err := Cleanup(context.Background(), root, CleanupOptions{Strip: true})
		if err != nil {
			b.Fatal(err)
		}
		saved = rep.StripSaved
	}
	b.ReportMetric(float64(saved), "bytes-saved")
}

// BenchmarkValidateModules runs the ELF walk of Validate over the module
// tree (modules are skipped by name; the walk itself is what is measured).
func BenchmarkValidateModules(b *testing.B) {
	root := debianModules(b)
	for b.Loop() {
		if _, err := checkELFDeps(root); err != nil {
			b.Fatal(err)
		}
	}
}
