package zinit

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// The rfs scripts are contract tests: the real rfs binary cannot be built
// here (crates.io is unreachable), so a recording script stands in for it.
//
// scriptRoot is a chroot holding Debian's static busybox, the shipped unit
// scripts and a stand-in `rfs` (a recording script: the real rfs needs FUSE
// and a blob store) that prints its arguments and exits.
func scriptRoot(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		testutil.Missing(t, "chroot needs root")
	}
	testutil.RequireFile(t, "/bin/busybox")
	root := t.TempDir()
	for _, d := range []string{"bin", "usr/bin", "etc/zinit/init", "etc/rfs", "etc/zero-os", "run", "tmp", "dev", "var/cache"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	bb, _ := os.ReadFile("/bin/busybox")
	os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755)
	for _, applet := range []string{"sh", "cat", "awk", "sed", "tr", "tail", "mkdir", "mv", "sleep", "wget", "uname", "grep"} {
		os.Symlink("busybox", filepath.Join(root, "bin", applet))
	}
	for _, f := range []string{"lib.sh", "rfs.sh", "udev-rfs.sh"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "zinit", "init", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, "etc/zinit/init", f), b, 0o644)
	}
	os.WriteFile(filepath.Join(root, "usr/bin/rfs"), []byte("#!/bin/sh\necho \"rfs-called $*\"\n"), 0o755)
	// Debian's static busybox wget cannot resolve addresses in a chroot
	// (glibc's NSS is not there); the fixture curl is a static Go client.
	goTool := testutil.RequireTool(t, "go")
	build := exec.Command(goTool, "build", "-o", filepath.Join(root, "usr/bin/curl"), "./testdata/curl")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the curl fixture: %v: %s", err, out)
	}
	os.WriteFile(filepath.Join(root, "etc/zero-os/kernel-version"), []byte("6.12.44-Zero-OS\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/rfs/modules-6.12.44-Zero-OS.fl"), []byte("embedded"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/rfs/firmware-latest.fl"), []byte("embedded"), 0o644)
	return root
}

func runScript(t *testing.T, root string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("chroot", append([]string{root, "/bin/sh", "/etc/zinit/init/rfs.sh"}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(2 * time.Minute): // an idling script never exits
		cmd.Process.Kill()
		<-done
		return out.String(), errIdled
	}
}

var errIdled = os.ErrDeadlineExceeded

func TestContractRfsScriptMountsEmbeddedManifests(t *testing.T) {
	root := scriptRoot(t)
	for kind, want := range map[string]string{
		"modules":  "rfs-called mount -m /etc/rfs/modules-6.12.44-Zero-OS.fl -c /var/cache/rfs/modules /lib/modules/6.12.44-Zero-OS",
		"firmware": "rfs-called mount -m /etc/rfs/firmware-latest.fl -c /var/cache/rfs/firmware /lib/firmware",
	} {
		out, err := runScript(t, root, nil, kind)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("%s: err %v, output:\n%s\nwant %q", kind, err, out, want)
		}
	}
	// The build host's kernel is not the image's: the script says so.
	out, _ := runScript(t, root, nil, "modules")
	if !strings.Contains(out, "WARNING: the running kernel is") {
		t.Errorf("no kernel mismatch warning:\n%s", out)
	}
}

func TestContractRfsScriptFetchesFromBaseURL(t *testing.T) {
	root := scriptRoot(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flists/firmware-latest.fl" {
			w.Write([]byte("fetched"))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	os.WriteFile(filepath.Join(root, "etc/environment"), []byte("FLISTS_BASE_URL=\""+srv.URL+"/flists\"\n"), 0o644)
	out, err := runScript(t, root, nil, "firmware")
	if err != nil || !strings.Contains(out, "rfs-called mount -m /var/cache/rfs/manifests/firmware-latest.fl") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "var/cache/rfs/manifests/firmware-latest.fl")); string(b) != "fetched" {
		t.Errorf("fetched manifest = %q", b)
	}
	// A base URL that never answers: bounded retries, a clear message, then the embedded manifest.
	out, err = runScript(t, root, []string{"RFS_FETCH_TRIES=2"}, "modules")
	if err != nil || !strings.Contains(out, "giving up on "+srv.URL+"/flists/modules-6.12.44-Zero-OS.fl after 2 tries") ||
		!strings.Contains(out, "rfs-called mount -m /etc/rfs/modules-6.12.44-Zero-OS.fl") {
		t.Errorf("err %v, output:\n%s", err, out)
	}
}

func TestContractRfsScriptWithoutRfsIdlesAndPassesCheck(t *testing.T) {
	root := scriptRoot(t)
	os.Remove(filepath.Join(root, "usr/bin/rfs"))
	if _, err := runScript(t, root, nil, "firmware", "check"); err == nil {
		t.Fatal("check passed before anything happened")
	}
	cmd := exec.Command("chroot", root, "/bin/sh", "/etc/zinit/init/rfs.sh", "firmware")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(root, "run/rfs-firmware.idle")); err == nil {
			break
		}
		if i > 600 {
			t.Fatal("the script did not give up without rfs")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := runScript(t, root, nil, "firmware", "check"); err != nil {
		t.Errorf("check after giving up: %v\n%s", err, out)
	}
}

// A unit script that fails says so where a person looks (the console; in
// this chroot, stdout): zinit keeps unit output in its log ring.
func TestContractFailingUnitScriptSaysSo(t *testing.T) {
	root := scriptRoot(t)
	cmd := exec.Command("chroot", root, "/bin/sh", "-c", ". /etc/zinit/init/lib.sh; exit 3")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(string(out), "exited with status 3") {
		t.Errorf("err %v, output %q; want exit 3 and the message", err, out)
	}
	cmd = exec.Command("chroot", root, "/bin/sh", "-c", ". /etc/zinit/init/lib.sh; exit 0")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("a script that succeeds: err %v, output %q", err, out)
	}
}
