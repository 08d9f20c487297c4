package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// OfflineBuild is a clone of the repository in which `mage
// fixtures:offline` and `PROFILE=offline mage build` ran: every stage for
// real, the kernel, the real zinit and the flists included. One is made per
// test run (SharedOffline) because the build takes minutes; scenarios that
// change it work on a Copy.
type OfflineBuild struct {
	// Dir is the clone's root.
	Dir string
	// Log is the output of the `mage build` that made it, and Took how long
	// that took.
	Log  string
	Took time.Duration

	mu     sync.Mutex
	edited map[*testing.T]bool // tests whose Edit rebuilds at their end
}

// TestMain removes the shared offline build once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cleanup != nil {
		shared.cleanup()
	}
	os.Exit(code)
}

// offlineEnv selects the offline profile.
var offlineEnv = []string{"PROFILE=offline"}

// shared is the run's one offline build and its removal.
var shared struct {
	once    sync.Once
	build   *OfflineBuild
	err     error
	cleanup func()
}

// keptBuildDir, when set, keeps the shared build in that folder between
// test runs: the clone's files are refreshed and `mage build` reruns only
// the stages whose inputs changed (for working on the tests; CI builds from
// clean).
const keptBuildDir = "ZOSBUILDER_E2E_OFFLINE_DIR"

// SharedOffline returns the run's offline build, making it on first use
// (about 8 minutes from clean on 2 cores: the kernel and the real zinit).
// A test calling it needs the tools of the build; without them it fails in
// CI and skips elsewhere. The build is removed when the package's tests end
// (TestMain).
func SharedOffline(t *testing.T) *OfflineBuild {
	t.Helper()
	testutil.Slow(t)
	for _, tool := range []string{"git", "make", "gcc", "flex", "bison", "bc", "depmod", "xz", "patch", "/usr/bin/cargo", "qemu-system-x86_64"} {
		if filepath.IsAbs(tool) {
			testutil.RequireFile(t, tool)
		} else {
			testutil.RequireTool(t, tool)
		}
	}
	testutil.RequireFile(t, "/usr/src/linux-source-6.1.tar.xz")
	testutil.RequireFile(t, "/bin/busybox")
	testutil.RequireFile(t, "/usr/share/cargo/registry")
	shared.once.Do(func() { shared.build, shared.err = makeOffline(t) })
	if shared.err != nil {
		t.Fatalf("the shared offline build failed: %v", shared.err)
	}
	return shared.build
}

// makeOffline clones the repository (into ZOSBUILDER_E2E_OFFLINE_DIR when
// set, else a temporary folder) and builds the offline profile there.
func makeOffline(t *testing.T) (*OfflineBuild, error) {
	dir := os.Getenv(keptBuildDir)
	if dir == "" {
		tmp, err := os.MkdirTemp("", "zosbuilder-offline-")
		if err != nil {
			return nil, err
		}
		dir = tmp
		shared.cleanup = func() { removeTree(tmp) }
	}
	if err := copyRepo(repoRoot(t), dir); err != nil {
		return nil, err
	}
	b := &OfflineBuild{Dir: dir}
	if out, err := b.Mage(t, nil, "fixtures:offline"); err != nil {
		return nil, errors.New("mage fixtures:offline: " + err.Error() + "\n" + out)
	}
	// The team's caches, when the tools are there: this build is the first
	// machine that fills them (TestCacheSharedAcrossMachines).
	stopCaches, err := enableTeamCaches(dir)
	if err != nil {
		return nil, err
	}
	removeDir := shared.cleanup
	shared.cleanup = func() {
		stopCaches()
		if removeDir != nil {
			removeDir()
		}
	}
	start := time.Now()
	out, err := b.Mage(t, offlineEnv, "build")
	b.Log, b.Took = out, time.Since(start)
	if err != nil {
		return nil, errors.New("PROFILE=offline mage build: " + err.Error() + "\n" + out)
	}
	t.Logf("shared offline build in %s: %s", dir, b.Took.Round(time.Second))
	return b, nil
}

// removeTree deletes a build, making read-only folders (Go's module cache
// in a component build) writable first.
func removeTree(dir string) {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	os.RemoveAll(dir)
}

// Path is the absolute path of rel (slash-separated) in the build's clone.
func (b *OfflineBuild) Path(rel string) string { return filepath.Join(b.Dir, filepath.FromSlash(rel)) }

// Mage runs mage targets in the build's clone through the zero-install
// entry point; env adds to the environment (offlineEnv selects the
// profile). It returns the combined output.
func (b *OfflineBuild) Mage(t testing.TB, env []string, args ...string) (string, error) {
	t.Helper()
	return mage(t, b.Dir, env, args...)
}

// Copy returns a copy of the build (clone, work tree and stage state) in a
// temporary folder of t, for a scenario that changes what it builds from
// (about 2.2 GB, the kernel tree most of it). The stage fingerprints hold
// absolute paths (the work folders, file:// mirror URLs), so in the copy
// every stage is stale: its first `mage build` reruns them all, with make
// and cargo finding most of their work done only where their own state
// does not hold absolute paths either.
func (b *OfflineBuild) Copy(t *testing.T) *OfflineBuild {
	t.Helper()
	dst := t.TempDir()
	// cp -a keeps modes, links and modification times (make and the stage
	// engine's hash cache look at them).
	if out, err := exec.Command("cp", "-a", b.Dir+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("copy the offline build: %v: %s", err, out)
	}
	t.Cleanup(func() { removeTree(dst) })
	// A copy is a machine of its own, without the team's caches: what it
	// rebuilds is up to make and cargo, not to the artifact store.
	if err := os.Remove(filepath.Join(dst, "config", "cache.conf")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return &OfflineBuild{Dir: dst, Log: b.Log, Took: b.Took}
}

// Edit writes data to rel (slash-separated, in the clone: a config file, a
// unit, a fixture under work/) for the rest of t, which then typically
// reruns `mage build` and looks at what an incremental build gives. When t
// ends, every file it edited gets its old content back (or is removed) and
// one incremental `mage build` brings the build back to what it was, so the
// tests after t find the shared build as SharedOffline made it (the same
// inputs give the same bytes).
func (b *OfflineBuild) Edit(t *testing.T, rel string, data []byte) {
	t.Helper()
	b.mu.Lock()
	if b.edited == nil {
		b.edited = map[*testing.T]bool{}
	}
	first := !b.edited[t]
	b.edited[t] = true
	b.mu.Unlock()
	if first {
		// Registered first, so it runs after the restores below (LIFO).
		t.Cleanup(func() {
			b.mu.Lock()
			delete(b.edited, t)
			b.mu.Unlock()
			if out, err := b.Mage(t, offlineEnv, "build"); err != nil {
				t.Errorf("rebuilding the shared offline build after the test's edits: %v\n%s", err, out)
			}
		})
	}
	p := b.Path(rel)
	old, err := os.ReadFile(p)
	existed := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		if existed {
			err = os.WriteFile(p, old, 0o644)
		} else {
			err = os.Remove(p)
		}
		if err != nil {
			t.Errorf("restore %s: %v", rel, err)
		}
	})
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Append is Edit with data added to the end of rel's content.
func (b *OfflineBuild) Append(t *testing.T, rel, data string) {
	t.Helper()
	old, err := os.ReadFile(b.Path(rel))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	b.Edit(t, rel, append(old, data...))
}

// Remove deletes rel (slash-separated, in the clone) for the rest of t: when
// t ends it gets its content back and the build is rebuilt, as after Edit.
func (b *OfflineBuild) Remove(t *testing.T, rel string) {
	t.Helper()
	old, err := os.ReadFile(b.Path(rel))
	if err != nil {
		t.Fatal(err)
	}
	b.Edit(t, rel, old)
	if err := os.Remove(b.Path(rel)); err != nil {
		t.Fatal(err)
	}
}

// BootOptions are how Boot starts the built image with runit.sh.
type BootOptions struct {
	// Store serves the build's local flist store to the VM (runit.sh
	// --store); without it the VM has no store.
	Store bool
	// Append is added to the kernel command line.
	Append string
	// Timeout stops the VM (runit.sh --timeout, seconds); 0 means 900.
	Timeout int
}

// Boot boots the build's kernel under QEMU with a restricted user-mode NIC
// (DHCP, and the store when asked; nothing leaves the machine) until the VM
// ends by itself, and returns runit.sh's exit code and the console.
func (b *OfflineBuild) Boot(t *testing.T, opt BootOptions) (int, string) {
	t.Helper()
	testutil.RequireTool(t, "qemu-system-x86_64")
	timeout := opt.Timeout
	if timeout == 0 {
		timeout = 900
	}
	args := []string{"--kernel", b.Path("work/offline/dist/vmlinuz.efi"), "--memory", "512M", "--net", "restricted",
		"--accel", "tcg", "--timeout", strconv.Itoa(timeout)}
	if opt.Store {
		args = append(args, "--store", b.Path("work/offline/dist/flists/store"))
	}
	if opt.Append != "" {
		args = append(args, "--append", opt.Append)
	}
	return testutil.Runit(t, filepath.Join(repoRoot(t), "runit.sh"), time.Duration(timeout+120)*time.Second, args...)
}
