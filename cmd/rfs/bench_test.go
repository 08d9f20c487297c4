package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// BenchmarkModulesTree mounts Debian's kernel module tree (packed once per
// store kind) and reports what a node feels: the first read of a module with
// an empty cache (cold: from the store), after a restart of the mounter with
// its block cache (warm), and again (hot: the kernel's page cache), each the
// median over the 112 Ethernet driver modules, with the mounter's CPU time
// per read (which other load on the machine does not inflate); the time and
// the mounter's CPU time to read the whole tree; and the mounter's peak RSS
// (VmHWM) after reading it all. The block cache is on tmpfs, as on a node. The README's mounter figures come from:
//
//	go test -run XXX -bench ModulesTree -benchtime 1x ./cmd/rfs
func BenchmarkModulesTree(b *testing.B) {
	trees, _ := filepath.Glob("/lib/modules/6.1.0-*-amd64")
	if len(trees) == 0 {
		testutil.Missing(b, "Debian's module tree /lib/modules/6.1.0-*-amd64 (linux-image-amd64)")
	}
	tree := trees[len(trees)-1]
	var sample []string
	err := filepath.WalkDir(filepath.Join(tree, "kernel/drivers/net/ethernet"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".ko") {
			rel, _ := filepath.Rel(tree, p)
			sample = append(sample, rel)
		}
		return err
	})
	if err != nil || len(sample) == 0 {
		b.Fatalf("no modules to sample: %v", err)
	}
	work := b.TempDir()
	storeDir := filepath.Join(work, "store")
	srv := httptest.NewServer(http.FileServer(http.Dir(storeDir)))
	defer srv.Close()
	for _, kind := range []string{"dir", "http"} {
		b.Run(kind, func(b *testing.B) {
			fl := filepath.Join(work, kind+".fl")
			var routes []store.Route
			if kind == "http" {
				routes = []store.Route{{Start: 0, End: 255, URL: srv.URL + "/"}}
			}
			if _, err := flist.Pack(context.Background(), tree, fl, flist.PackOptions{Store: store.NewDir(storeDir), RouteOverride: routes}); err != nil {
				b.Fatal(err)
			}
			for i := range b.N {
				cache := filepath.Join(cacheRoot(b), fmt.Sprintf("cache-%s-%d", kind, i))
				target := mkdir(b, work, fmt.Sprintf("mnt-%s-%d", kind, i))
				pid := mountDaemon(b, fl, target, "-c", cache)
				cpu0 := cpuTime(b, pid)
				cold := medianRead(b, target, sample)
				coldCPU := (cpuTime(b, pid) - cpu0) / time.Duration(len(sample))
				hot := medianRead(b, target, sample)
				start := time.Now()
				cpu0 = cpuTime(b, pid)
				var bytes int64
				err := filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
					if err != nil || !d.Type().IsRegular() {
						return err
					}
					data, err := os.ReadFile(p)
					bytes += int64(len(data))
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				whole, cpu := time.Since(start), cpuTime(b, pid)-cpu0
				hwm := vmHWM(b, pid)
				if err := syscall.Unmount(target, 0); err != nil {
					b.Fatal(err)
				}
				pid = mountDaemon(b, fl, target, "-c", cache)
				cpu0 = cpuTime(b, pid)
				warm := medianRead(b, target, sample)
				warmCPU := (cpuTime(b, pid) - cpu0) / time.Duration(len(sample))
				if err := syscall.Unmount(target, 0); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(ms(cold), "cold-ms")
				b.ReportMetric(ms(warm), "warm-ms")
				b.ReportMetric(ms(hot), "hot-ms")
				b.ReportMetric(ms(coldCPU), "cold-cpu-ms")
				b.ReportMetric(ms(warmCPU), "warm-cpu-ms")
				b.ReportMetric(whole.Seconds(), "tree-s")
				b.ReportMetric(cpu.Seconds(), "tree-cpu-s")
				b.ReportMetric(float64(bytes)/1e6/cpu.Seconds(), "MB/cpu-s")
				b.ReportMetric(float64(hwm)/1024, "peak-RSS-MiB")
			}
		})
	}
}

// cacheRoot is where the benchmark keeps block caches: on tmpfs, as on a
// node (whose /var/cache is in the initramfs), when /dev/shm is there.
func cacheRoot(b *testing.B) string {
	dir, err := os.MkdirTemp("/dev/shm", "rfs-bench-")
	if err != nil {
		return b.TempDir()
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// medianRead reads each file of sample under root and returns the median
// time of one read.
func medianRead(b testing.TB, root string, sample []string) time.Duration {
	times := make([]time.Duration, 0, len(sample))
	for _, rel := range sample {
		times = append(times, timeRead(b, filepath.Join(root, rel)))
	}
	slices.Sort(times)
	return times[len(times)/2]
}

// cpuTime is the user and system time a process has used so far.
func cpuTime(b testing.TB, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	_, after, _ := strings.Cut(string(data), ") ")
	f := strings.Fields(after) // f[0] is field 3 (state): utime and stime are fields 14 and 15
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
}

func timeRead(b testing.TB, path string) time.Duration {
	start := time.Now()
	if _, err := os.ReadFile(path); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// vmHWM is a process's peak resident set size, in KiB.
func vmHWM(b testing.TB, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
