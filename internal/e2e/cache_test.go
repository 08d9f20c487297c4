package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/redistest"
	"github.com/threefoldtech/zosbuilder/internal/s3test"
	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/cpio"
)

// cacheServers is what the team's machines share, on loopback: versitygw
// for the artifacts and the flists, Debian's redis-server for ccache, and
// one Alpine mirror. Machines that build the same image use the same URLs:
// the offline profile's own mirror and local flist store are named by the
// work tree's path, which ends up in the image (/etc/apk/repositories, the
// flists' route).
type cacheServers struct {
	s3     *s3test.Server
	redis  *redistest.Server
	mirror string // file:// URL of the team's mirror, made from the first clone's fixture
}

func startCacheServers(t *testing.T) *cacheServers {
	t.Helper()
	s3 := s3test.StartWithT(t, s3test.Options{Metadata: true})
	for _, bucket := range []string{"zos-cache", "zos-flists"} {
		if err := s3.CreateBucket(context.Background(), bucket); err != nil {
			t.Fatal(err)
		}
	}
	return &cacheServers{s3: s3, redis: redistest.StartT(t)}
}

// conf is the config/cache.conf every machine of the team uses.
func (s *cacheServers) conf() string {
	return fmt.Sprintf("CACHE_URL=\"s3://%s/zos-cache/artifacts\"\nCACHE_ACCESS_KEY=%q\nCACHE_SECRET_KEY=%q\nCOMPILE_CACHE_REMOTE=%q\n",
		s.s3.Addr, s.s3.AccessKey, s.s3.SecretKey, s.redis.URL())
}

// rfsConf is the config/rfs.conf every machine uses: the same flist store,
// so the same route in the flists.
func (s *cacheServers) rfsConf() string {
	return fmt.Sprintf("S3_ENDPOINT=%q\nS3_REGION=%q\nS3_BUCKET=zos-flists\nS3_ACCESS_KEY=%q\nS3_SECRET_KEY=%q\n",
		s.s3.Endpoint(), s3test.Region, s.s3.AccessKey, s.s3.SecretKey)
}

// env is the environment of a build on any machine of the team.
func (s *cacheServers) env() []string {
	return []string{"PROFILE=offline", "ALPINE_MIRROR=" + s.mirror}
}

func (s *cacheServers) stop() {
	s.s3.Stop()
	s.redis.Stop()
}

// newCachedClone is a fresh clone at dir (empty local state) with the
// offline fixtures, config/cache.conf and config/rfs.conf. The first one's
// fixture mirror becomes the team's mirror.
func newCachedClone(t *testing.T, srv *cacheServers, dir string) string {
	t.Helper()
	if err := copyRepo(repoRoot(t), dir); err != nil {
		t.Fatal(err)
	}
	if out, err := mage(t, dir, nil, "fixtures:offline"); err != nil {
		t.Fatalf("fixtures:offline: %v\n%s", err, out)
	}
	for name, body := range map[string]string{"cache.conf": srv.conf(), "rfs.conf": srv.rfsConf()} {
		if err := os.WriteFile(filepath.Join(dir, "config", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if srv.mirror == "" {
		mirror := filepath.Join(t.TempDir(), "team-mirror")
		if out, err := run(t, dir, nil, "cp", "-a", filepath.Join(dir, "work", "offline", "mirror"), mirror); err != nil {
			t.Fatalf("copy the mirror: %v\n%s", err, out)
		}
		srv.mirror = "file://" + mirror
	}
	return dir
}

// cachedBuild is a clone built with the offline profile and the caches
// configured: the start of the scenario below. (The shared offline build
// of the e2e tests can be it, once it writes config/cache.conf first.)
type cachedBuild struct {
	dir string
	out string // the build's output
}

func mageOK(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := mage(t, dir, env, args...)
	if err != nil {
		t.Fatalf("mage %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return out
}

// TestCacheSharedAcrossMachines is issue 14's proof: two machines, two
// clones in different paths, one artifact store and one compile cache.
func TestCacheSharedAcrossMachines(t *testing.T) {
	testutil.Slow(t)
	for _, tool := range []string{"git", "make", "gcc", "flex", "bison", "bc", "depmod", "xz", "ccache", "redis-server"} {
		testutil.RequireTool(t, tool)
	}
	testutil.RequireFile(t, "/usr/src/linux-source-6.1.tar.xz")
	testutil.RequireFile(t, "/bin/busybox")
	srv := startCacheServers(t)
	a := newCachedClone(t, srv, filepath.Join(t.TempDir(), "machine-a"))
	out := mageOK(t, a, srv.env(), "build")
	cacheScenario(t, srv, cachedBuild{dir: a, out: out})
}

// cacheScenario starts from clone A, built cold with the caches configured.
func cacheScenario(t *testing.T, srv *cacheServers, a cachedBuild) {
	figures := &benchLog{}
	defer figures.log(t)
	cold := stageTimes(a.out)
	for _, s := range []string{"kernel_modules", "components_build"} {
		if !regexp.MustCompile(s + `: done in \S+ \(artifact cache: miss\)`).MatchString(a.out) {
			t.Fatalf("A did not build and publish %s:\n%s", s, a.out)
		}
	}
	figures.add("A (cold): kernel_modules", cold["kernel_modules"], "")
	figures.add("A (cold): components_build", cold["components_build"], "")
	figures.add("A (cold): kernel_build", cold["kernel_build"], "")
	coldCPU := makeCPU(t, a.out)
	figures.note(fmt.Sprintf("A: make vmlinux modules used %s CPU; %s", coldCPU, compileLine(t, a.out)))
	figures.note("store after A: " + storeBytes(t, srv))

	// B: another clone in another path, nothing built: the expensive
	// stages restore what A published.
	b := newCachedClone(t, srv, filepath.Join(t.TempDir(), "machine-b", "in", "a", "deeper", "path"))
	start := time.Now()
	out := mageOK(t, b, srv.env(), "build")
	t.Logf("B's build: %s", time.Since(start).Round(time.Second))
	warm := stageTimes(out)
	for _, s := range []string{"kernel_modules", "components_build"} {
		if !regexp.MustCompile(s + `: done in \S+ \(restored from the artifact cache`).MatchString(out) {
			t.Errorf("B did not restore %s:\n%s", s, out)
		}
		figures.add("B (artifact hit): "+s, warm[s], fmt.Sprintf("%.1f%% of cold", 100*warm[s].Seconds()/cold[s].Seconds()))
	}
	figures.add("B (artifact hit): kernel_build (extracts the source, relinks)", warm["kernel_build"], "")
	if strings.Contains(out, "building fakezinit") || strings.Contains(out, "kernel: make vmlinux modules") {
		t.Errorf("B compiled what it restored:\n%s", out)
	}
	status := mageOK(t, b, srv.env(), "status")
	for _, s := range []string{"kernel_modules", "components_build"} {
		if !regexp.MustCompile(`(?m)^` + s + `\s+done\s.*\shit\s`).MatchString(status) {
			t.Errorf("mage status does not show the hit of %s:\n%s", s, status)
		}
	}
	cacheStatus := mageOK(t, b, srv.env(), "cache:status")
	if !strings.Contains(cacheStatus, "2 hits, 0 misses") || strings.Contains(cacheStatus, srv.s3.SecretKey) {
		t.Errorf("mage cache:status:\n%s", cacheStatus)
	}
	t.Logf("mage cache:status on B:\n%s", cacheStatus)
	// Same sources, same SOURCE_DATE_EPOCH: the same image, byte for byte.
	image, archive := "work/offline/dist/vmlinuz.efi", "work/offline/dist/initramfs.cpio.xz"
	if !bytes.Equal(readFile(t, a.dir, image), readFile(t, b, image)) {
		t.Errorf("the images of A and B differ; initramfs entries that differ: %v",
			archiveDiff(t, readFile(t, a.dir, archive), readFile(t, b, archive)))
	}

	// B with one kernel option changed and empty local state (a fresh CI
	// runner): kernel_modules misses and compiles through the compile
	// cache A filled. CACHE_PUSH=false keeps the result out of the store,
	// so the last step builds the same config without the caches.
	setOption(t, b, "# CONFIG_PRINTK_TIME is not set", "CONFIG_PRINTK_TIME=y")
	freshState(t, b, srv)
	out = mageOK(t, b, append([]string{"CACHE_PUSH=false"}, srv.env()...), "build")
	changed := stageTimes(out)
	if !regexp.MustCompile(`kernel_modules: done in \S+ \(artifact cache: miss\)`).MatchString(out) {
		t.Errorf("the changed config did not rebuild kernel_modules:\n%s", out)
	}
	line := compileLine(t, out)
	hits, total, remote := compileCounts(t, line)
	changedCPU := makeCPU(t, out)
	figures.add("B, one option changed, fresh state: kernel_modules", changed["kernel_modules"],
		fmt.Sprintf("%.1f%% of cold; make vmlinux modules %s CPU, %.1f%% of cold; %s", 100*changed["kernel_modules"].Seconds()/cold["kernel_modules"].Seconds(),
			changedCPU, 100*changedCPU.Seconds()/coldCPU.Seconds(), line))
	if total == 0 || hits*2 < total || remote == 0 {
		t.Errorf("the compile cache did not serve the unchanged objects: %s", line)
	}
	ccacheS, _ := run(t, b, []string{"CCACHE_DIR=" + filepath.Join(b, "downloads", "ccache")}, "ccache", "-s")
	t.Logf("ccache -s on B after the config change:\n%s", ccacheS)
	withCache, withCacheArchive := readFile(t, b, image), readFile(t, b, archive)
	modsWithCache := treeHash(t, filepath.Join(b, "work/offline/kernel/modules-root"))

	// The same config again from empty local state, the cache servers
	// stopped mid-build: B builds everything itself, says once that the
	// cache is gone, and makes the same bytes as with the compile cache.
	freshState(t, b, srv)
	out = buildStoppingServers(t, b, srv, "extracting /usr/src/linux-source-6.1.tar.xz")
	if n := strings.Count(out, "cache unreachable"); n != 1 {
		t.Errorf("the build said %d times that the cache is unreachable, want once:\n%s", n, out)
	}
	if !regexp.MustCompile(`kernel_modules: done in \S+ \(artifact cache: miss\)`).MatchString(out) {
		t.Errorf("kernel_modules was not built locally:\n%s", out)
	}
	figures.note("B, servers stopped: " + compileLine(t, out))
	if !bytes.Equal(readFile(t, b, image), withCache) {
		t.Errorf("the image built without the compile cache differs from the one built with it; initramfs entries that differ: %v",
			archiveDiff(t, withCacheArchive, readFile(t, b, archive)))
	}
	if got := treeHash(t, filepath.Join(b, "work/offline/kernel/modules-root")); got != modsWithCache {
		t.Errorf("the modules built without the compile cache differ from those built with it")
	}
}

// buildStoppingServers runs `mage build` and stops the cache servers when
// the output shows trigger.
func buildStoppingServers(t *testing.T, dir string, srv *cacheServers, trigger string) string {
	t.Helper()
	cmd := exec.Command(testutil.RequireTool(t, "go"), "run", "magefile.go", "build")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), srv.env()...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var wg sync.WaitGroup
	stopped := false
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !stopped && strings.Contains(sc.Text(), trigger) {
				srv.stop()
				stopped = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	wg.Wait()
	if !stopped {
		t.Errorf("the build never printed %q, so the servers were not stopped mid-build", trigger)
	}
	if err != nil {
		t.Fatalf("the build with the cache servers stopped failed: %v\n%s", err, out.String())
	}
	return out.String()
}

// archiveDiff names the entries of two initramfs archives that differ
// (header or content), to tell a kernel difference from an initramfs one.
func archiveDiff(t *testing.T, a, b []byte) []string {
	t.Helper()
	entries := func(xzData []byte) map[string]string {
		cmd := exec.Command("xz", "-dc")
		cmd.Stdin = bytes.NewReader(xzData)
		raw, err := cmd.Output()
		if err != nil {
			t.Errorf("xz -dc: %v", err)
			return nil
		}
		m := map[string]string{}
		r := cpio.NewReader(bytes.NewReader(raw))
		for {
			h, err := r.Next()
			if err != nil {
				break
			}
			body, _ := io.ReadAll(r)
			sum := sha256.Sum256(body)
			m[h.Name] = fmt.Sprintf("%o %d %d %x", h.Mode, h.MTime, h.Size, sum[:8])
		}
		return m
	}
	ea, eb := entries(a), entries(b)
	var diff []string
	for name, v := range ea {
		if eb[name] != v {
			diff = append(diff, name)
		}
	}
	for name := range eb {
		if _, ok := ea[name]; !ok {
			diff = append(diff, name)
		}
	}
	sort.Strings(diff)
	if len(diff) == 0 {
		return []string{"none: the kernels differ"}
	}
	return diff
}

// freshState removes the clone's work folders, markers and local ccache.
func freshState(t *testing.T, dir string, srv *cacheServers) {
	t.Helper()
	mageOK(t, dir, srv.env(), "clean")
	if err := os.RemoveAll(filepath.Join(dir, "downloads", "ccache")); err != nil {
		t.Fatal(err)
	}
}

func setOption(t *testing.T, dir, from, to string) {
	t.Helper()
	p := filepath.Join(dir, "config", "profiles", "offline", "kernel.config")
	b := readFile(t, dir, "config/profiles/offline/kernel.config")
	if !bytes.Contains(b, []byte(from)) {
		t.Fatalf("%s has no line %q", p, from)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte(from), []byte(to), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// treeHash hashes a tree's names, modes and contents.
func treeHash(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v\n", rel, fi.Mode())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

var doneRe = regexp.MustCompile(`(?m)(\w+): done in (\S+)`)

// stageTimes reads "STAGE: done in DURATION" lines.
func stageTimes(out string) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, g := range doneRe.FindAllStringSubmatch(out, -1) {
		if d, err := time.ParseDuration(g[2]); err == nil {
			m[g[1]] = d
		}
	}
	return m
}

var makeCPURe = regexp.MustCompile(`kernel: make modules: \S+, (\S+) CPU`)

// makeCPU is the CPU time of kernel_modules' `make vmlinux modules`.
func makeCPU(t *testing.T, out string) time.Duration {
	t.Helper()
	g := makeCPURe.FindStringSubmatch(out)
	if g == nil {
		t.Errorf("no CPU time of make vmlinux modules in:\n%s", out)
		return time.Nanosecond
	}
	d, _ := time.ParseDuration(g[1])
	return d
}

var compileRe = regexp.MustCompile(`compile cache: (\d+) of (\d+) compilations from the cache \([0-9.]+%, (\d+) from the remote storage\), \d+ compiled`)

func compileLine(t *testing.T, out string) string {
	t.Helper()
	m := compileRe.FindString(out)
	if m == "" {
		t.Errorf("no compile cache summary in:\n%s", out)
	}
	return m
}

func compileCounts(t *testing.T, line string) (hits, total, remote int) {
	t.Helper()
	g := compileRe.FindStringSubmatch(line)
	if g == nil {
		return 0, 0, 0
	}
	hits, _ = strconv.Atoi(g[1])
	total, _ = strconv.Atoi(g[2])
	remote, _ = strconv.Atoi(g[3])
	return hits, total, remote
}

// storeBytes sums the artifact objects versitygw holds.
func storeBytes(t *testing.T, srv *cacheServers) string {
	t.Helper()
	var n, size int64
	root := filepath.Join(srv.s3.Dir, "zos-cache", "artifacts")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n++
				size += fi.Size()
			}
			t.Logf("stored: %s", strings.TrimPrefix(p, root))
		}
		return nil
	})
	return fmt.Sprintf("%d objects, %d bytes", n, size)
}

// benchLog collects the figures the README quotes.
type benchLog struct{ lines []string }

func (b *benchLog) add(what string, d time.Duration, extra string) {
	line := fmt.Sprintf("%-62s %8s", what, d.Round(100*time.Millisecond))
	if extra != "" {
		line += "  " + extra
	}
	b.lines = append(b.lines, line)
}

func (b *benchLog) note(s string) { b.lines = append(b.lines, s) }

func (b *benchLog) log(t *testing.T) {
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("figures (load average %s):\n%s", strings.TrimSpace(string(load)), strings.Join(b.lines, "\n"))
}
