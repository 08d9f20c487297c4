package ccache

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/redistest"
	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// tree lays out a source tree and an object folder inside it, as kbuild
// does with O=<subfolder>: the compiler runs in the object folder and names
// sources with relative paths.
func tree(t *testing.T, root string) (obj string) {
	t.Helper()
	files := map[string]string{
		"include/answer.h": "#define ANSWER 42\n",
		"src/x.c":          "#include \"answer.h\"\nint answer(void) { return ANSWER; }\nconst char *file = __FILE__;\n",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	obj = filepath.Join(root, "out")
	os.MkdirAll(obj, 0o755)
	return obj
}

func compile(t *testing.T, dir string, env []string) []byte {
	t.Helper()
	// Through sh, so gcc is looked up in env's PATH as make does.
	cmd := exec.Command("sh", "-c", "exec gcc -c -O2 -I../include -fmacro-prefix-map=../= ../src/x.c -o x.o")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "x.o"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Two machines, two work-tree paths, two local folders, one Redis: the
// second compiles nothing, and its object is the one gcc makes without the
// cache.
func TestSharedRemoteAcrossPaths(t *testing.T) {
	testutil.RequireTool(t, "ccache")
	testutil.RequireTool(t, "gcc")
	ctx := context.Background()
	redis := redistest.StartT(t)
	machines := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "deeper", "path", "b")}
	var objects [][]byte
	var deltas []Delta
	for _, root := range machines {
		obj := tree(t, root)
		s, err := Setup(ctx, Options{Dir: filepath.Join(root, "ccache"), BaseDir: root, Remote: redis.URL(), MaxSize: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if s.RemoteErr != nil {
			t.Fatal(s.RemoteErr)
		}
		before, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		objects = append(objects, compile(t, obj, s.Env()))
		after, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		deltas = append(deltas, after.Since(before))
	}
	if deltas[0].Misses != 1 || deltas[0].Hits != 0 {
		t.Errorf("first machine: %+v", deltas[0])
	}
	if deltas[1].Hits != 1 || deltas[1].RemoteHits != 1 || deltas[1].Misses != 0 || deltas[1].HitRate != 1 {
		t.Errorf("second machine, another path: %+v (want one remote hit)", deltas[1])
	}
	if !strings.Contains(deltas[1].String(), "1 of 1 compilations from the cache (100.0%, 1 from the remote storage)") {
		t.Errorf("summary: %s", deltas[1])
	}
	plain := compile(t, tree(t, filepath.Join(t.TempDir(), "plain")), nil)
	for i, o := range objects {
		if !bytes.Equal(o, plain) {
			t.Errorf("machine %d: the object differs from gcc's own", i)
		}
	}
}

// A remote that does not answer leaves a local-only session, and its
// password never shows.
func TestUnreachableRemote(t *testing.T) {
	testutil.RequireTool(t, "ccache")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	root := t.TempDir()
	s, err := Setup(context.Background(), Options{Dir: filepath.Join(root, "cc"), BaseDir: root, Remote: "redis://:hunter22@" + addr})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(s.RemoteErr, ErrUnreachable) || strings.Contains(s.RemoteErr.Error(), "hunter22") || !strings.Contains(s.RemoteErr.Error(), addr) {
		t.Errorf("RemoteErr = %v", s.RemoteErr)
	}
	if conf := readConf(t, root); strings.Contains(conf, "remote_storage") {
		t.Errorf("the unreachable remote is still configured:\n%s", conf)
	}
}

func readConf(t *testing.T, baseDir string) string {
	t.Helper()
	p := filepath.Join(baseDir, ".ccache.conf")
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file %s: %v %v (want mode 0600: it may hold a password)", p, err, fi)
	}
	b, _ := os.ReadFile(p)
	return string(b)
}

// A remote that stops answering during a build is turned off at once and
// reported once; compiling goes on locally.
func TestWatchTurnsRemoteOff(t *testing.T) {
	testutil.RequireTool(t, "ccache")
	redis := redistest.StartT(t)
	root := t.TempDir()
	reported := make(chan error, 4)
	s, err := Setup(context.Background(), Options{Dir: filepath.Join(root, "cc"), BaseDir: root, Remote: redis.URL(),
		OnUnreachable: func(what string, err error) { reported <- err }})
	if err != nil || s.RemoteErr != nil {
		t.Fatal(err, s.RemoteErr)
	}
	if !strings.Contains(readConf(t, root), "remote_storage = "+redis.URL()) {
		t.Fatalf("remote not configured:\n%s", readConf(t, root))
	}
	stop := s.Watch(context.Background(), 20*time.Millisecond)
	defer stop()
	redis.Stop()
	select {
	case err := <-reported:
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("reported %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the stopped remote was not reported")
	}
	stop()
	if len(reported) != 0 {
		t.Error("reported more than once")
	}
	if conf := readConf(t, root); strings.Contains(conf, "remote_storage") {
		t.Errorf("the remote is still configured:\n%s", conf)
	}
	compile(t, tree(t, filepath.Join(root, "src")), s.Env())
}

func TestSetupErrors(t *testing.T) {
	if _, err := Setup(context.Background(), Options{Bin: "/nonexistent/ccache", Dir: "/tmp/x", BaseDir: "/tmp"}); err == nil ||
		!strings.Contains(err.Error(), "COMPILE_CACHE=off") {
		t.Errorf("missing ccache: %v", err)
	}
	if got := Redact("redis://user:pw@h:1/0"); strings.Contains(got, "pw") || !strings.Contains(got, "h:1") {
		t.Errorf("Redact = %q", got)
	}
}
