package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
// store kind) and reports what a node feels: the first read of one module
// with an empty cache (cold: from the store), after a restart of the
// mounter with its block cache (warm), and again (hot: the kernel's page
// cache); the time to read the whole tree; and the mounter's peak RSS
// (VmHWM) after reading it all. The README's mounter figures come from:
//
//	go test -run XXX -bench ModulesTree -benchtime 1x ./cmd/rfs
func BenchmarkModulesTree(b *testing.B) {
	trees, _ := filepath.Glob("/lib/modules/6.1.0-*-amd64")
	if len(trees) == 0 {
		testutil.Missing(b, "Debian's module tree /lib/modules/6.1.0-*-amd64 (linux-image-amd64)")
	}
	tree := trees[len(trees)-1]
	const module = "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko"
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
				cache := filepath.Join(work, fmt.Sprintf("cache-%s-%d", kind, i))
				target := mkdir(b, work, fmt.Sprintf("mnt-%s-%d", kind, i))
				pid := mountDaemon(b, fl, target, "-c", cache)
				cold := timeRead(b, filepath.Join(target, module))
				hot := timeRead(b, filepath.Join(target, module))
				start := time.Now()
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
				whole := time.Since(start)
				hwm := vmHWM(b, pid)
				if err := syscall.Unmount(target, 0); err != nil {
					b.Fatal(err)
				}
				mountDaemon(b, fl, target, "-c", cache)
				warm := timeRead(b, filepath.Join(target, module))
				if err := syscall.Unmount(target, 0); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(cold.Microseconds())/1000, "cold-ms")
				b.ReportMetric(float64(warm.Microseconds())/1000, "warm-ms")
				b.ReportMetric(float64(hot.Microseconds())/1000, "hot-ms")
				b.ReportMetric(whole.Seconds(), "tree-s")
				b.ReportMetric(float64(bytes)/whole.Seconds()/1e6, "tree-MB/s")
				b.ReportMetric(float64(hwm)/1024, "peak-RSS-MiB")
			}
		})
	}
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
