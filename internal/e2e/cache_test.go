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

	"github.com/threefoldtech/zosbuilder/internal/fixtures"
	"github.com/threefoldtech/zosbuilder/internal/redistest"
	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/internal/versitygw"
	"github.com/threefoldtech/zosbuilder/pkg/cpio"
)

// cacheServers is what the team's machines share, on loopback: versitygw
// for the artifacts and Debian's redis-server for ccache. The shared offline
// build (SharedOffline) is the team's first machine: when the tools are
// there, the harness starts these before its build and writes
// config/cache.conf into its clone (enableTeamCaches), so that one kernel
// build fills the caches and TestCacheSharedAcrossMachines adds no cold one.
type cacheServers struct {
	s3    *versitygw.Server
	redis *redistest.Server
	dir   string // their data, removed by close
}

// teamCaches are the shared build's caches; nil when it ran without them.
var teamCaches *cacheServers

// enableTeamCaches starts the team's cache servers and writes
// config/cache.conf into the clone at dir. Without versitygw, redis-server
// or ccache it does nothing (the cache test then fails in CI and skips
// elsewhere). The returned function stops the servers and removes their
// data.
func enableTeamCaches(dir string) (func(), error) {
	redis, _ := exec.LookPath("redis-server")
	ccache, _ := exec.LookPath("ccache")
	if versitygw.Bin() == "" || redis == "" || ccache == "" {
		return func() {}, nil
	}
	data, err := os.MkdirTemp("", "zosbuilder-team-caches-")
	if err != nil {
		return nil, err
	}
	srv := &cacheServers{dir: data}
	ctx := context.Background()
	if srv.s3, err = versitygw.Start(ctx, versitygw.Options{Dir: filepath.Join(data, "s3"), Metadata: true}); err != nil {
		srv.close()
		return nil, err
	}
	if err := srv.s3.CreateBucket(ctx, "zos-cache"); err != nil {
		srv.close()
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(data, "redis"), 0o755); err != nil {
		srv.close()
		return nil, err
	}
	if srv.redis, err = redistest.Start(ctx, redis, filepath.Join(data, "redis")); err != nil {
		srv.close()
		return nil, err
	}
	if err := srv.writeConf(dir); err != nil {
		srv.close()
		return nil, err
	}
	teamCaches = srv
	return srv.close, nil
}

// writeConf writes the config/cache.conf every machine of the team uses.
func (s *cacheServers) writeConf(dir string) error {
	conf := fmt.Sprintf("CACHE_URL=\"s3://%s/zos-cache/artifacts\"\nCACHE_ACCESS_KEY=%q\nCACHE_SECRET_KEY=%q\nCOMPILE_CACHE_REMOTE=%q\n",
		s.s3.Addr, s.s3.AccessKey, s.s3.SecretKey, s.redis.URL())
	return os.WriteFile(filepath.Join(dir, "config", "cache.conf"), []byte(conf), 0o600)
}

// stop stops both servers (the stopped-servers scenario).
func (s *cacheServers) stop() {
	s.s3.Stop()
	s.redis.Stop()
}

// restart brings them back on the same addresses: the artifacts are kept,
// the compile cache's storage starts empty.
func (s *cacheServers) restart(t *testing.T) {
	ctx := context.Background()
	if err := s.s3.Restart(ctx); err != nil {
		t.Errorf("restart versitygw: %v", err)
	}
	if err := s.redis.Restart(ctx); err != nil {
		t.Errorf("restart redis-server: %v", err)
	}
}

func (s *cacheServers) close() {
	if s.s3 != nil {
		s.s3.Close()
	}
	if s.redis != nil {
		s.redis.Stop()
	}
	os.RemoveAll(s.dir)
}

func mageOK(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := mage(t, dir, env, args...)
	if err != nil {
		t.Fatalf("mage %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return out
}

// newMachine is a fresh clone at dir (empty local state) of another machine
// of the team: its offline fixtures, made with the team's fixture signing
// key (so its fixture mirror has the same bytes as A's, as every machine
// of a team reads one Alpine mirror), and config/cache.conf.
func newMachine(t *testing.T, a *OfflineBuild, srv *cacheServers, dir string) string {
	t.Helper()
	if err := copyRepo(repoRoot(t), dir); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join("work", "offline", filepath.FromSlash(fixtures.OfflineSigningKey))
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, key)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, key), readFile(t, a.Dir, key), 0o600); err != nil {
		t.Fatal(err)
	}
	mageOK(t, dir, nil, "fixtures:offline")
	if err := srv.writeConf(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCacheSharedAcrossMachines is issue 14's proof, and issue 12's "two
// clones in different paths give identical images": machine A is the shared
// offline build, made with the team's caches; machine B a fresh clone in
// another path that restores from them, then recompiles a changed kernel
// config through the compile cache, then builds with the cache servers
// stopped mid-build.
func TestCacheSharedAcrossMachines(t *testing.T) {
	testutil.Slow(t)
	testutil.RequireTool(t, "ccache")
	testutil.RequireTool(t, "redis-server")
	if versitygw.Bin() == "" {
		testutil.Missing(t, "versitygw not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	a := SharedOffline(t)
	srv := teamCaches
	if srv == nil {
		t.Fatal("the shared offline build ran without the team's caches")
	}
	for _, s := range []string{"kernel_modules", "components_build"} {
		if !regexp.MustCompile(`\[` + s + `\] done in \S+ \(artifact cache: [^)]*miss`).MatchString(a.Log) {
			if os.Getenv(keptBuildDir) != "" {
				t.Skipf("%s: the kept shared build did not build %s in this run, so nothing was published", keptBuildDir, s)
			}
			t.Fatalf("A did not build and publish %s:\n%s", s, a.Log)
		}
	}
	cacheScenario(t, srv, a)
}

// cacheScenario starts from machine A, built cold with the caches.
func cacheScenario(t *testing.T, srv *cacheServers, a *OfflineBuild) {
	figures := &benchLog{}
	defer figures.log(t)
	cold := stageTimes(a.Log)
	figures.add("A (cold): kernel_modules", cold["kernel_modules"], "")
	figures.add("A (cold): components_build", cold["components_build"], "")
	figures.add("A (cold): kernel_build", cold["kernel_build"], "")
	coldCPU := makeCPU(t, a.Log)
	figures.note(fmt.Sprintf("A: make vmlinux modules used %s CPU; %s", coldCPU, compileLine(t, a.Log)))
	figures.note("store after A: " + storeBytes(t, srv))

	// B: another clone in another path, nothing built: the expensive
	// stages restore what A published.
	b := newMachine(t, a, srv, filepath.Join(t.TempDir(), "machine-b", "in", "a", "deeper", "path"))
	start := time.Now()
	out := mageOK(t, b, offlineEnv, "build")
	t.Logf("B's build: %s", time.Since(start).Round(time.Second))
	warm := stageTimes(out)
	for _, s := range []string{"kernel_modules", "components_build"} {
		if !regexp.MustCompile(`\[` + s + `\] done in \S+ \(restored from the artifact cache`).MatchString(out) {
			t.Errorf("B did not restore %s:\n%s", s, out)
		}
		figures.add("B (artifact hit): "+s, warm[s], fmt.Sprintf("%.1f%% of cold", 100*warm[s].Seconds()/cold[s].Seconds()))
	}
	figures.add("B (artifact hit): kernel_build (extracts the source, relinks)", warm["kernel_build"], "")
	if strings.Contains(out, "building zinit") || strings.Contains(out, "kernel: make vmlinux modules") {
		t.Errorf("B compiled what it restored:\n%s", out)
	}
	status := mageOK(t, b, offlineEnv, "status")
	for _, s := range []string{"kernel_modules", "components_build"} {
		if !regexp.MustCompile(`(?m)^` + s + `\s+done\s.*\s(hit|\d+ hits, 0 misses)\s`).MatchString(status) {
			t.Errorf("mage status does not show the hit of %s:\n%s", s, status)
		}
	}
	cacheStatus := mageOK(t, b, offlineEnv, "cache:status")
	if !regexp.MustCompile(`\d+ hits, 0 misses`).MatchString(cacheStatus) || strings.Contains(cacheStatus, srv.s3.SecretKey) {
		t.Errorf("mage cache:status:\n%s", cacheStatus)
	}
	t.Logf("mage cache:status on B:\n%s", cacheStatus)
	// Nothing in B's image names B's work tree (/etc/apk/repositories, the
	// flists' routes, any file), and with the same sources and
	// SOURCE_DATE_EPOCH the images are the same, byte for byte.
	if leaks := filesNaming(t, filepath.Join(b, "work/offline/initramfs"), b); len(leaks) > 0 {
		t.Errorf("files of B's image name its work tree %s: %v", b, leaks)
	}
	compareImages(t, a.Dir, b, "A", "B")

	// B with one kernel option changed and empty local state (a fresh CI
	// runner): kernel_modules misses and compiles through the compile
	// cache A filled. CACHE_PUSH=false keeps the result out of the store,
	// so the next step misses too.
	setOption(t, b, "# CONFIG_PRINTK_TIME is not set", "CONFIG_PRINTK_TIME=y")
	mageOK(t, b, offlineEnv, "clean")
	ccacheDir := filepath.Join(b, "downloads", "ccache")
	if err := os.RemoveAll(ccacheDir); err != nil {
		t.Fatal(err)
	}
	out = mageOK(t, b, append([]string{"CACHE_PUSH=false"}, offlineEnv...), "build")
	changed := stageTimes(out)
	if !regexp.MustCompile(`\[kernel_modules\] done in \S+ \(artifact cache: miss\)`).MatchString(out) {
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
	ccacheS, _ := run(t, b, []string{"CCACHE_DIR=" + ccacheDir}, "ccache", "-s")
	t.Logf("ccache -s on B after the config change:\n%s", ccacheS)
	image, archive := "work/offline/dist/vmlinuz.efi", "work/offline/dist/initramfs.cpio.xz"
	withCache, withCacheArchive := readFile(t, b, image), readFile(t, b, archive)
	modsWithCache := treeHash(t, filepath.Join(b, "work/offline/kernel/modules-root"))

	// The same config, its two cached stages forgotten, the cache servers
	// stopped once components_build restored its artifacts: kernel_modules
	// finds the store and the compile cache's storage gone mid-build,
	// builds locally, says once that the cache is unreachable, and makes
	// the same bytes. Not from `mage clean`: the kernel objtree stays, so
	// make has nothing to recompile (a clean rebuild from the local ccache
	// took 5 of CI's minutes and showed nothing more about the servers).
	for _, s := range []string{"components_build", "kernel_modules"} {
		mageOK(t, b, offlineEnv, "reset", s)
	}
	out = buildStoppingServers(t, b, srv, "[components_build] done in")
	t.Cleanup(func() { srv.restart(t) }) // for the tests after this one
	if n := strings.Count(out, "cache unreachable"); n != 1 {
		t.Errorf("the build said %d times that the cache is unreachable, want once:\n%s", n, out)
	}
	if !regexp.MustCompile(`\[kernel_modules\] done in \S+ \(artifact cache: miss\)`).MatchString(out) {
		t.Errorf("kernel_modules was not built locally:\n%s", out)
	}
	figures.add("B, servers stopped: kernel_modules (objtree kept)", stageTimes(out)["kernel_modules"], compileLine(t, out))
	if !bytes.Equal(readFile(t, b, image), withCache) {
		t.Errorf("the image built with the servers stopped differs from the one before; initramfs entries that differ: %v",
			archiveDiff(t, withCacheArchive, readFile(t, b, archive)))
	}
	if got := treeHash(t, filepath.Join(b, "work/offline/kernel/modules-root")); got != modsWithCache {
		t.Errorf("the modules built with the servers stopped differ from those before")
	}
}

// compareImages fails unless the vmlinuz.efi and initramfs.cpio.xz of the
// two clones have the same bytes, and then says what differs (mage
// image:diff, from the SBOMs the images carry, and the initramfs entries).
func compareImages(t *testing.T, a, b, nameA, nameB string) {
	t.Helper()
	for _, rel := range []string{"work/offline/dist/initramfs.cpio.xz", "work/offline/dist/vmlinuz.efi"} {
		if bytes.Equal(readFile(t, a, rel), readFile(t, b, rel)) {
			continue
		}
		diff, _ := mage(t, b, offlineEnv, "image:diff", filepath.Join(a, rel), filepath.Join(b, rel))
		t.Errorf("%s of %s and %s differ; mage image:diff:\n%s", filepath.Base(rel), nameA, nameB, diff)
		if strings.HasSuffix(rel, ".xz") {
			t.Errorf("initramfs entries that differ: %v", archiveDiff(t, readFile(t, a, rel), readFile(t, b, rel)))
		}
	}
}

// filesNaming lists the files under root whose content holds s.
func filesNaming(t *testing.T, root, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			rel, _ := filepath.Rel(root, p)
			found = append(found, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// buildStoppingServers runs `mage build` and stops the cache servers when
// the output shows trigger.
func buildStoppingServers(t *testing.T, dir string, srv *cacheServers, trigger string) string {
	t.Helper()
	cmd := exec.Command(testutil.RequireTool(t, "go"), "run", "magefile.go", "build")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), offlineEnv...)
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

var doneRe = regexp.MustCompile(`\[(\w+)\] done in (\S+)`)

// stageTimes reads the "[STAGE] done in DURATION" lines.
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
