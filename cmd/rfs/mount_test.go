package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// The tests below run the real binary, built the way the components stage
// builds it, against real FUSE mounts (as root, which is how nodes run it).

var (
	buildOnce sync.Once
	binDir    string
	binErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// rfsBin builds the command once: static (CGO off), stripped, trimmed.
func rfsBin(t testing.TB) string {
	t.Helper()
	testutil.Slow(t)
	if os.Geteuid() != 0 {
		testutil.Missing(t, "root: nodes mount as root (mount syscall, allow_other)")
	}
	testutil.RequireFile(t, "/dev/fuse")
	goBin := testutil.RequireTool(t, "go")
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "rfs-bin-"); binErr != nil {
			return
		}
		cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(binDir, "rfs"), ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "rfs")
}

// guard bounds how long one command may hang before the test gives up on
// it; it is not a performance limit.
const guard = 2 * time.Minute

// rfsRun runs the binary and returns its combined output and error.
func rfsRun(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	out, err := exec.CommandContext(ctx, rfsBin(t), args...).CombinedOutput()
	return string(out), err
}

// packed is a tree packed into an flist.
type packed struct {
	src, fl, store string
}

// pack packs the testutil tree into a dir store; routes, when given, are
// written into the flist instead of the store's own.
func pack(t *testing.T, routes ...store.Route) packed {
	t.Helper()
	return packIn(t, t.TempDir(), routes...)
}

// packIn is pack in the folder work.
func packIn(t *testing.T, work string, routes ...store.Route) packed {
	t.Helper()
	p := packed{src: filepath.Join(work, "src"), fl: filepath.Join(work, "tree.fl"), store: filepath.Join(work, "store")}
	testutil.MakeTree(t, p.src)
	_, err := flist.Pack(context.Background(), p.src, p.fl, flist.PackOptions{Store: store.NewDir(p.store), RouteOverride: routes})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// blobPath is where the dir store keeps the blob of a file whose content
// is one block.
func (p packed) blobPath(t *testing.T, content []byte) string {
	t.Helper()
	b, _, err := flist.EncodeBlock(content)
	if err != nil {
		t.Fatal(err)
	}
	h := store.Hex(b.ID[:])
	return filepath.Join(p.store, h[:2], h)
}

// mountEntry is a line of /proc/self/mountinfo.
type mountEntry struct {
	point, opts, fstype, source, superOpts string
}

func findMount(t testing.TB, mountinfo, point string) (mountEntry, bool) {
	t.Helper()
	data, err := os.ReadFile(mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 3 {
			continue
		}
		if unescapeOctal(f[4]) == point {
			return mountEntry{point: point, opts: f[5], fstype: g[0], source: g[1], superOpts: g[2]}, true
		}
	}
	return mountEntry{}, false
}

// mountDaemon runs `rfs mount -d` and returns the daemon's pid (the mount's
// source, as with rfs). The mount is detached and the daemon killed when
// the test ends.
func mountDaemon(t testing.TB, fl, target string, extra ...string) int {
	t.Helper()
	args := append([]string{"mount", "-d", "-m", fl}, extra...)
	if out, err := rfsRun(t, append(args, target)...); err != nil {
		t.Fatalf("rfs mount -d: %v\n%s", err, out)
	}
	// The parent returned: the mount must be live now, not later.
	e, ok := findMount(t, "/proc/self/mountinfo", target)
	if !ok {
		t.Fatalf("rfs mount -d returned but %s is not mounted", target)
	}
	pid, err := strconv.Atoi(e.source)
	if err != nil {
		t.Fatalf("mount source %q is not the daemon's pid", e.source)
	}
	t.Cleanup(func() {
		_ = syscall.Unmount(target, syscall.MNT_DETACH)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	})
	return pid
}

func mkdir(t testing.TB, parts ...string) string {
	t.Helper()
	p := filepath.Join(parts...)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// alive reports whether pid runs (a zombie no longer does: the daemon's
// parent has exited, and whoever inherited it may not reap it).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(data), ") ")
	return !strings.HasPrefix(after, "Z") && !strings.HasPrefix(after, "X")
}

// eventually polls cond until it holds or the guard runs out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(guard); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: still not the case after %s", what, guard)
}

// TestMountDaemon is how the units use rfs: a daemon mount that is live
// when the command returns, with rfs's options, the packed tree byte for
// byte, a second mount refused, and a clean unmount.
func TestMountDaemon(t *testing.T) {
	p := pack(t)
	work := t.TempDir()
	target := mkdir(t, work, "mnt")
	pid := mountDaemon(t, p.fl, target, "-c", filepath.Join(work, "cache"))

	e, _ := findMount(t, "/proc/self/mountinfo", target)
	if e.fstype != "fuse.g8ufs" {
		t.Errorf("type %s, want fuse.g8ufs", e.fstype)
	}
	for _, o := range []string{"ro", "nosuid", "nodev"} {
		if !hasOpt(e.opts, o) {
			t.Errorf("mount options %s lack %s", e.opts, o)
		}
	}
	for _, o := range []string{"allow_other", "default_permissions"} {
		if !hasOpt(e.superOpts, o) {
			t.Errorf("superblock options %s lack %s", e.superOpts, o)
		}
	}
	if !alive(pid) {
		t.Fatalf("daemon %d is not running", pid)
	}

	testutil.CompareTrees(t, p.src, target)
	if err := os.WriteFile(filepath.Join(target, "hello.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write to the mount: %v, want EROFS", err)
	}

	// allow_other with default_permissions: another user reads what the
	// modes let it read, and nothing else.
	// (t.TempDir makes 0700 folders: open the way to the mount.)
	for dir := filepath.Dir(target); strings.HasPrefix(dir, os.TempDir()+"/"); dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cat := testutil.RequireTool(t, "cat")
	asNobody := func(path string) error {
		cmd := exec.Command(cat, path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := asNobody(filepath.Join(target, "hello.txt")); err != nil {
		t.Errorf("nobody cannot read a 0644 file: %v", err)
	}
	if err := asNobody(filepath.Join(target, "exact-512k.bin")); err == nil {
		t.Error("nobody read a 0600 file of root")
	}

	out, err := rfsRun(t, "mount", "-d", "-m", p.fl, target)
	if err == nil || !strings.Contains(out, "already a mount point") {
		t.Errorf("second mount on %s: %v, %q; want a refusal", target, err, out)
	}
	if _, err := os.ReadFile(filepath.Join(target, "hello.txt")); err != nil {
		t.Errorf("first mount broken by the refused one: %v", err)
	}

	umount := testutil.RequireTool(t, "umount")
	if out, err := exec.Command(umount, target).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	eventually(t, "daemon exits after umount", func() bool { return !alive(pid) })
	if _, ok := findMount(t, "/proc/self/mountinfo", target); ok {
		t.Error("still mounted after umount")
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("mountpoint holds %d entries after umount", len(entries))
	}
}

func hasOpt(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// TestMountForeground is how zinit runs rfs (rfs.sh): in the foreground,
// stopped with SIGTERM, which unmounts; a file still open on the mount does
// not keep the mounter from stopping (the mount is detached).
func TestMountForeground(t *testing.T) {
	p := pack(t)
	work := t.TempDir()
	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			target := mkdir(t, work, fmt.Sprintf("mnt-%v", busy))
			logFile := filepath.Join(work, "rfs.log")
			cmd := exec.Command(rfsBin(t), "mount", "-m", p.fl, "-c", filepath.Join(work, "cache"), "-l", logFile, target)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = syscall.Unmount(target, syscall.MNT_DETACH)
				_ = cmd.Process.Kill()
			})
			eventually(t, "mounted", func() bool { _, ok := findMount(t, "/proc/self/mountinfo", target); return ok })
			got, err := os.ReadFile(filepath.Join(target, "big/compressible.txt"))
			want, _ := os.ReadFile(filepath.Join(p.src, "big/compressible.txt"))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read through the mount: %v (%d bytes, want %d)", err, len(got), len(want))
			}
			if busy {
				f, err := os.Open(filepath.Join(target, "hello.txt"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("rfs after SIGTERM: %v", err)
			}
			if _, ok := findMount(t, "/proc/self/mountinfo", target); ok {
				t.Error("still mounted after SIGTERM")
			}
			log, _ := os.ReadFile(logFile)
			if !strings.Contains(string(log), "mounted "+p.fl+" on "+target) {
				t.Errorf("log lacks the mount line:\n%s", log)
			}
		})
	}
}

// TestMountWithoutFusermount runs the mounter where no fusermount exists
// (the binaries' folders hidden in a private mount namespace): as root it
// mounts with the mount syscall. The mount is read through /proc/PID/root.
func TestMountWithoutFusermount(t *testing.T) {
	bin := rfsBin(t)
	unshare := testutil.RequireTool(t, "unshare")
	p := pack(t)
	work := t.TempDir()
	target := mkdir(t, work, "mnt")
	var hide strings.Builder
	for _, d := range []string{"/usr/local/bin", "/usr/local/sbin", "/usr/sbin", "/usr/bin"} {
		if st, err := os.Lstat(d); err == nil && st.IsDir() {
			fmt.Fprintf(&hide, "mount -t tmpfs none %s && ", d)
		}
	}
	script := hide.String() + `exec "$0" mount -m "$1" -c "$2" "$3"`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script,
		bin, p.fl, filepath.Join(work, "cache"), target)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	mountinfo := fmt.Sprintf("/proc/%d/mountinfo", pid)
	eventually(t, "mounted in the namespace", func() bool {
		if cmd.ProcessState != nil || !alive(pid) {
			t.Fatalf("rfs exited: %s", out.String())
		}
		_, ok := findMount(t, mountinfo, target)
		return ok
	})
	root := fmt.Sprintf("/proc/%d/root", pid)
	for _, name := range []string{"fusermount3", "fusermount"} {
		for _, dir := range []string{"/usr/bin", "/bin", "/usr/sbin", "/usr/local/bin"} {
			if _, err := os.Stat(filepath.Join(root, dir, name)); err == nil {
				t.Fatalf("%s/%s is visible to the mounter", dir, name)
			}
		}
	}
	got, err := os.ReadFile(filepath.Join(root, target, "plus-one.bin"))
	want, _ := os.ReadFile(filepath.Join(p.src, "plus-one.bin"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read through the mount: %v (%d bytes, want %d)", err, len(got), len(want))
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("rfs after SIGTERM: %v: %s", err, out.String())
	}
}

// TestTamperedBlob: a blob that is not what its id names reads as EIO,
// never as other bytes, and a missing blob too; a tampered cache entry is
// fetched again.
func TestTamperedBlob(t *testing.T) {
	p := pack(t)
	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	hello, _ := os.ReadFile(filepath.Join(p.src, "hello.txt"))
	deep, _ := os.ReadFile(filepath.Join(p.src, "a/b/c/deep.txt"))

	// hello.txt: one bit flipped. a/b/c/deep.txt: a valid blob of other
	// content under its id. dup/one.txt: gone.
	helloBlob := p.blobPath(t, hello)
	b, err := os.ReadFile(helloBlob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(helloBlob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, other, err := flist.EncodeBlock([]byte("deeP"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.blobPath(t, deep), other, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.blobPath(t, []byte("same content\n"))); err != nil {
		t.Fatal(err)
	}

	target := mkdir(t, work, "mnt")
	logFile := filepath.Join(work, "rfs.log")
	mountDaemon(t, p.fl, target, "-c", cache, "-l", logFile)
	for _, name := range []string{"hello.txt", "dup/hardlink.txt", "a/b/c/deep.txt", "dup/one.txt", "dup/two.txt"} {
		got, err := os.ReadFile(filepath.Join(target, name))
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s: read %q, %v; want EIO", name, got, err)
		}
	}
	// Everything else reads back.
	for _, name := range []string{"plus-one.bin", "big/random-3m.bin", "bin/setuid"} {
		got, err := os.ReadFile(filepath.Join(target, name))
		want, _ := os.ReadFile(filepath.Join(p.src, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	log, _ := os.ReadFile(logFile)
	for _, want := range []string{"does not hash to its id", "not found"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(string(log), "retrying") {
		t.Errorf("a corrupt or missing blob was retried:\n%s", log)
	}
	if _, err := os.Stat(blockCacheFile(cache, hello)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a tampered block reached the cache: %v", err)
	}

	// A cache entry changed on disk is dropped and fetched again.
	name := "bin/setuid"
	want, _ := os.ReadFile(filepath.Join(p.src, name))
	entry := blockCacheFile(cache, want)
	if err := os.WriteFile(entry, bytes.ToUpper(want), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Unmount(target, 0); err != nil {
		t.Fatal(err)
	}
	mountDaemon(t, p.fl, target, "-c", cache)
	if got, err := os.ReadFile(filepath.Join(target, name)); err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s with a tampered cache entry: %q, %v; want %q", name, got, err, want)
	}
	if got, _ := os.ReadFile(entry); !bytes.Equal(got, want) {
		t.Errorf("cache entry not refetched: %q", got)
	}
}

// blockCacheFile is rfs's cache path of a one-block file's content.
func blockCacheFile(cache string, content []byte) string {
	b, _, _ := flist.EncodeBlock(content)
	h := store.Hex(b.ID[:])
	return filepath.Join(cache, h[:2], h[2:4], h)
}

// packHTTP packs the tree with an http:// route to a loopback server in
// front of its dir store, as the VM reads blobs. The server first asks
// fail, and answers 503 when it says so.
func packHTTP(t *testing.T, fail func(*http.Request) bool) packed {
	t.Helper()
	work := t.TempDir()
	storeDir := filepath.Join(work, "store")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail(r) {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		http.FileServer(http.Dir(storeDir)).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p := packIn(t, work, store.Route{Start: 0, End: 255, URL: srv.URL + "/"})
	if p.store != storeDir {
		t.Fatalf("store in %s, served from %s", p.store, storeDir)
	}
	return p
}

// TestHTTPStoreRetries reads the tree over an http:// route (a loopback
// server in front of the dir store, as the VM reads blobs) while the server
// fails requests: the mounter retries until it gets the blobs, and gives up
// with EIO on a blob that keeps failing.
func TestHTTPStoreRetries(t *testing.T) {
	var failures atomic.Int32
	failures.Store(3)
	var broken atomic.Value // a blob path that always fails
	broken.Store("")
	p := packHTTP(t, func(r *http.Request) bool {
		return r.URL.Path == broken.Load().(string) || failures.Add(-1) >= 0
	})

	work := t.TempDir()
	target := mkdir(t, work, "mnt")
	logFile := filepath.Join(work, "rfs.log")
	mountDaemon(t, p.fl, target, "-c", filepath.Join(work, "cache"), "-l", logFile)
	testutil.CompareTrees(t, p.src, target)
	if n := failures.Load(); n >= 0 {
		t.Errorf("%d injected failures never reached the mounter", n+1)
	}
	log, _ := os.ReadFile(logFile)
	if got := strings.Count(string(log), "retrying"); got != 3 {
		t.Errorf("%d retries logged, want 3:\n%s", got, log)
	}

	deep, _ := os.ReadFile(filepath.Join(p.src, "a/b/c/deep.txt"))
	blob, _ := filepath.Rel(p.store, p.blobPath(t, deep))
	broken.Store("/" + blob)
	// A fresh cache and mount, so the block is not already at hand.
	if err := syscall.Unmount(target, 0); err != nil {
		t.Fatal(err)
	}
	mountDaemon(t, p.fl, target, "-c", filepath.Join(work, "cache2"), "-l", logFile)
	if got, err := os.ReadFile(filepath.Join(target, "a/b/c/deep.txt")); !errors.Is(err, syscall.EIO) {
		t.Errorf("blob that keeps failing: read %q, %v; want EIO", got, err)
	}
	log, _ = os.ReadFile(logFile)
	if !strings.Contains(string(log), fmt.Sprintf("gave up after %d attempts", store.DefaultAttempts)) {
		t.Errorf("log does not say the mounter gave up:\n%s", log)
	}
}

// TestInterruptedRead: a reader that gets a signal while it waits for a
// block (Go programs get SIGURG all the time) still gets the bytes, not EIO:
// the kernel tells the mounter about the signal, and the mounter finishes
// the read anyway.
func TestInterruptedRead(t *testing.T) {
	dd := testutil.RequireTool(t, "dd")
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var slow atomic.Value
	slow.Store("")
	p := packHTTP(t, func(r *http.Request) bool {
		if r.URL.Path == slow.Load().(string) {
			once.Do(func() { close(arrived) })
			<-release
		}
		return false
	})
	hello, _ := os.ReadFile(filepath.Join(p.src, "hello.txt"))
	blob, _ := filepath.Rel(p.store, p.blobPath(t, hello))
	slow.Store("/" + blob)
	work := t.TempDir()
	target := mkdir(t, work, "mnt")
	mountDaemon(t, p.fl, target, "-c", filepath.Join(work, "cache"))

	// A read through the page cache waits for the kernel's readahead,
	// which no signal interrupts; a direct read is a request of its own.
	// dd prints its progress on SIGUSR1, so the signal interrupts rather
	// than kills it.
	cmd := exec.Command(dd, "if="+filepath.Join(target, "hello.txt"), "iflag=direct", "bs=4096", "status=none")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-arrived
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// Time for the interrupt to reach the mounter before the blob comes.
	time.Sleep(300 * time.Millisecond)
	close(release)
	if err := cmd.Wait(); err != nil || stdout.String() != string(hello) {
		t.Errorf("interrupted read: %v, %q (stderr %q); want %q", err, stdout.String(), stderr.String(), hello)
	}
}

// TestColdReadFetchesEachBlobOnce: the kernel reads a file in 128 KiB
// pieces, several at once; a 512 KiB block is still fetched once.
func TestColdReadFetchesEachBlobOnce(t *testing.T) {
	var mu sync.Mutex
	requests := map[string]int{}
	p := packHTTP(t, func(r *http.Request) bool {
		mu.Lock()
		requests[r.URL.Path]++
		mu.Unlock()
		return false
	})
	work := t.TempDir()
	target := mkdir(t, work, "mnt")
	mountDaemon(t, p.fl, target, "-c", filepath.Join(work, "cache"))
	testutil.CompareTrees(t, p.src, target)
	mu.Lock()
	defer mu.Unlock()
	blobs, _ := filepath.Glob(filepath.Join(p.store, "*", "*"))
	if len(requests) != len(blobs) {
		t.Errorf("%d blobs requested, the store holds %d", len(requests), len(blobs))
	}
	for path, n := range requests {
		if n != 1 {
			t.Errorf("%s requested %d times", path, n)
		}
	}
}

// TestMemoryBounded: the mounter's memory does not grow with the number of
// files it has served. 600 files of one 512 KiB block (hard links: one blob,
// 600 inodes, each read on its own) go through the mount; a mounter that
// kept each file's last block, as this one once did, holds 300 MiB after.
func TestMemoryBounded(t *testing.T) {
	work := t.TempDir()
	src := mkdir(t, work, "src")
	first := filepath.Join(src, "file-000")
	if err := os.WriteFile(first, randomBytes(t, 512<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 600; i++ {
		if err := os.Link(first, filepath.Join(src, fmt.Sprintf("file-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	fl := filepath.Join(work, "links.fl")
	if _, err := flist.Pack(context.Background(), src, fl, flist.PackOptions{Store: store.NewDir(filepath.Join(work, "store"))}); err != nil {
		t.Fatal(err)
	}
	target := mkdir(t, work, "mnt")
	pid := mountDaemon(t, fl, target, "-c", filepath.Join(work, "cache"))
	entries, err := os.ReadDir(target)
	if err != nil || len(entries) != 600 {
		t.Fatalf("readdir: %d entries, %v", len(entries), err)
	}
	for _, e := range entries {
		if _, err := os.ReadFile(filepath.Join(target, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if hwm := vmHWM(t, pid); hwm > 150<<10 {
		t.Errorf("mounter's peak RSS is %d MiB after serving 300 MiB of reads", hwm>>10)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCacheBound: the block cache never holds more than --cache-size, also
// when a previous run left more; reads stay correct while it evicts.
func TestCacheBound(t *testing.T) {
	p := pack(t)
	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	target := mkdir(t, work, "mnt")
	const bound = 1 << 20

	// Unbounded first: the whole tree ends up in the cache.
	mountDaemon(t, p.fl, target, "-c", cache, "--cache-size", "0")
	testutil.CompareTrees(t, p.src, target)
	if err := syscall.Unmount(target, 0); err != nil {
		t.Fatal(err)
	}
	if n := cacheBytes(t, cache); n <= 4*bound {
		t.Fatalf("unbounded cache holds only %d bytes", n)
	}

	mountDaemon(t, p.fl, target, "-c", cache, "--cache-size", "1M")
	// The restart trimmed what the previous run left.
	if n := cacheBytes(t, cache); n > bound {
		t.Errorf("cache holds %d bytes after a restart with --cache-size 1M", n)
	}
	testutil.CompareTrees(t, p.src, target)
	if n := cacheBytes(t, cache); n > bound || n == 0 {
		t.Errorf("cache holds %d bytes after reading the tree, want 1..%d", n, bound)
	}
}

// cacheBytes sums the blocks in a cache (rfs's layout) and checks that
// nothing else is there.
func cacheBytes(t *testing.T, cache string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(cache, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(cache, path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 || len(parts[2]) != 64 || parts[0] != parts[2][:2] || parts[1] != parts[2][2:4] {
			t.Errorf("cache holds %s, not a block in rfs's layout", rel)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMountErrors: a mount that cannot happen fails the command with the
// reason, in daemon mode too, and leaves nothing mounted.
func TestMountErrors(t *testing.T) {
	p := pack(t)
	work := t.TempDir()
	target := mkdir(t, work, "mnt")
	notFlist := filepath.Join(work, "garbage.fl")
	if err := os.WriteFile(notFlist, bytes.Repeat([]byte("not sqlite "), 500), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing flist", []string{"-d", "-m", filepath.Join(work, "none.fl"), target}, "none.fl"},
		{"not an flist", []string{"-d", "-m", notFlist, target}, "garbage.fl"},
		{"missing target", []string{"-m", p.fl, filepath.Join(work, "nowhere")}, "nowhere"},
		{"target is a file", []string{"-d", "-m", p.fl, p.fl}, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := rfsRun(t, append([]string{"mount", "-c", filepath.Join(work, "cache")}, tt.args...)...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit %v, want status 1; output:\n%s", err, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output does not name %q:\n%s", tt.want, out)
			}
			if _, ok := findMount(t, "/proc/self/mountinfo", target); ok {
				t.Error("mounted anyway")
			}
		})
	}
}

// TestMountReplacesDeadMount: a mounter killed with SIGKILL leaves a dead
// FUSE mount ("transport endpoint is not connected"); the next mount
// replaces it instead of refusing it forever.
func TestMountReplacesDeadMount(t *testing.T) {
	p := pack(t)
	work := t.TempDir()
	target := mkdir(t, work, "mnt")
	pid := mountDaemon(t, p.fl, target, "-c", filepath.Join(work, "cache"))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "daemon killed", func() bool { return !alive(pid) })
	// stat may still be answered from the attribute cache; statfs is not.
	// The leader can be a zombie while its other threads still hold the
	// device open, and a statfs the dying server was reading fails with
	// EIO: the mount is dead once statfs says disconnected.
	eventually(t, "statfs of the dead mount fails with ENOTCONN or ECONNABORTED", func() bool {
		var st syscall.Statfs_t
		return disconnected(syscall.Statfs(target, &st))
	})
	mountDaemon(t, p.fl, target, "-c", filepath.Join(work, "cache"))
	if got, err := os.ReadFile(filepath.Join(target, "hello.txt")); err != nil || string(got) != "hello world\n" {
		t.Fatalf("read after replacing the dead mount: %q, %v", got, err)
	}
}

func TestVersion(t *testing.T) {
	out, err := rfsRun(t, "--version")
	if err != nil || !strings.HasPrefix(out, "rfs ") {
		t.Fatalf("rfs --version: %v, %q", err, out)
	}
}
