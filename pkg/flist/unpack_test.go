package flist

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// TestUnpackHTTP unpacks through an http:// route: a dir store served by a
// web server, the way a node reads a public blob store.
func TestUnpackHTTP(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	storeRoot := t.TempDir()
	srv := httptest.NewServer(http.StripPrefix("/blobs", http.FileServer(http.Dir(storeRoot))))
	defer srv.Close()
	fl := filepath.Join(t.TempDir(), "http.fl")
	_, err := Pack(ctx, src, fl, PackOptions{Store: store.NewDir(storeRoot),
		RouteOverride: []store.Route{{Start: 0, End: 255, URL: srv.URL + "/blobs"}}})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := Unpack(ctx, fl, dst, UnpackOptions{Routes: localRoutes}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
	if rep, err := Verify(ctx, fl, VerifyOptions{Deep: true, Routes: localRoutes}); err != nil {
		t.Errorf("verify over http: %s: %v", rep, err)
	}
}

// The unprivileged half of TestUnpackUnprivileged runs in a child process
// started with these variables.
const (
	helperEnv   = "FLIST_TEST_UNPACK_AS_USER"
	helperFlist = "FLIST_TEST_FLIST"
	helperOut   = "FLIST_TEST_OUT"
)

// TestUnpackUnprivileged: without root, unpack skips device nodes with one
// warning and still creates everything else. Run as root, the test runs the
// unpack in a copy of the test binary as user nobody.
func TestUnpackUnprivileged(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		unpackAsUser(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to build a tree with a device node")
	}
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(base, "src")
	makeTree(t, src)
	fl := filepath.Join(base, "u.fl")
	if _, err := Pack(ctx, src, fl, PackOptions{Store: store.NewDir(filepath.Join(base, "store"))}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	// The go build cache is not readable by nobody: run a copy.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "flist.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestUnpackUnprivileged$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperFlist+"="+fl, helperOut+"="+filepath.Join(out, "tree"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unpack as nobody: %v\n%s", err, output)
	}
	if !strings.Contains(string(output), "--- PASS: TestUnpackUnprivileged") {
		t.Fatalf("the helper did not run:\n%s", output)
	}
}

func unpackAsUser(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Fatal("helper runs as root")
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	hook := test.NewLocal(log)
	out := os.Getenv(helperOut)
	if err := Unpack(ctx, os.Getenv(helperFlist), out, UnpackOptions{Log: log, Routes: localRoutes}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(out, "dev/null")); err == nil {
		t.Error("device node created without root")
	}
	warnings := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warnings++
			if !strings.Contains(e.Message, "skipped 1 device node") {
				t.Errorf("warning: %s", e.Message)
			}
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings, want 1", warnings)
	}
	fi, err := os.Lstat(filepath.Join(out, "a/fifo"))
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v, %v", fi, err)
	}
	got, err := os.ReadFile(filepath.Join(out, "dup/two.txt"))
	if err != nil || !bytes.Equal(got, []byte("same content\n")) {
		t.Errorf("dup/two.txt = %q, %v", got, err)
	}
	fi, err = os.Stat(filepath.Join(out, "bin/setuid"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("bin/setuid lost its setuid bit: %v, %v", fi, err)
	}
}
