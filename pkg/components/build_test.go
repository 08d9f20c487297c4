package components

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/download"
	"github.com/threefoldtech/zosbuilder/pkg/elfbin"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	testutil.RequireTool(t, "git")
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func hello(msg string) string {
	return "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"" + msg + "\") }\n"
}

// goRepo makes a git repository holding a tiny Go program tagged v1.0.0.
func goRepo(t *testing.T) string {
	t.Helper()
	testutil.RequireTool(t, "go")
	repo := filepath.Join(t.TempDir(), "hello")
	testutil.WriteFile(t, filepath.Join(repo, "go.mod"), "module example.org/hello\n\ngo 1.21\n", 0o644)
	testutil.WriteFile(t, filepath.Join(repo, "cmd/hello/main.go"), hello("hello v1"), 0o644)
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "v1")
	git(t, repo, "tag", "v1.0.0")
	return repo
}

func warnings(h *test.Hook) string {
	var w []string
	for _, e := range h.AllEntries() {
		if e.Level == logrus.WarnLevel {
			w = append(w, e.Message)
		}
	}
	return strings.Join(w, "\n")
}

func TestGitGoComponentBuildVerifyCopy(t *testing.T) {
	repo := goRepo(t)
	work := t.TempDir()
	log, hook := test.NewNullLogger()
	opt := Options{WorkDir: work, Jobs: 2, Log: log}
	comps := []Component{{Type: Git, Name: "hello", Source: repo, Version: "v1.0.0",
		Build: BuildSpec{Kind: Go, Arg: "./cmd/hello"}, InstallPath: "/usr/bin/hello", File: "sources.conf", Line: 1}}
	ctx := context.Background()

	if err := Build(ctx, comps, opt); err != nil {
		t.Fatal(err)
	}
	if err := Verify(comps, opt); err != nil {
		t.Fatal(err)
	}
	info, err := elfbin.Read(opt.Artifact(comps[0]))
	if err != nil || !info.Static() {
		t.Fatalf("artifact not static: %+v %v", info, err)
	}
	root := t.TempDir()
	if err := Copy(ctx, comps, root, true, opt); err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(root, "usr/bin/hello")
	if got := strings.TrimSpace(testutil.Run(t, "", nil, installed)); got != "hello v1" {
		t.Errorf("installed binary says %q", got)
	}
	st, _ := os.Stat(installed)
	ast, _ := os.Stat(opt.Artifact(comps[0]))
	if st.Mode().Perm() != 0o755 || st.Size() >= ast.Size() {
		t.Errorf("installed mode %v size %d (artifact %d): want 0755 and stripped", st.Mode(), st.Size(), ast.Size())
	}
	if _, err := os.Stat(opt.LogFile(comps[0])); err != nil {
		t.Errorf("no build log: %v", err)
	}

	// The SBOM names the commit built.
	if rev, err := opt.Revision(ctx, comps[0]); err != nil || rev != git(t, repo, "rev-parse", "v1.0.0^{commit}") {
		t.Errorf("revision %q, %v", rev, err)
	}

	// A maintainer edits the checkout: the rerun keeps and builds the edit.
	edited := filepath.Join(work, "hello/cmd/hello/main.go")
	testutil.WriteFile(t, edited, hello("edited"), 0o644)
	if err := Build(ctx, comps, opt); err != nil {
		t.Fatal(err)
	}
	if rev, err := opt.Revision(ctx, comps[0]); err != nil || !strings.HasSuffix(rev, "-dirty") {
		t.Errorf("revision of an edited checkout %q, %v", rev, err)
	}
	if b, _ := os.ReadFile(edited); string(b) != hello("edited") {
		t.Fatal("rerun discarded the local edit")
	}
	if got := strings.TrimSpace(testutil.Run(t, "", nil, opt.Artifact(comps[0]))); got != "edited" {
		t.Errorf("rerun built %q, want the edited tree", got)
	}
	if w := warnings(hook); !strings.Contains(w, "local changes") {
		t.Errorf("no warning about local changes, got %q", w)
	}

	// Upstream moves on; a clean checkout follows VERSION.
	testutil.WriteFile(t, filepath.Join(repo, "cmd/hello/main.go"), hello("hello v2"), 0o644)
	git(t, repo, "commit", "-q", "-am", "v2")
	git(t, repo, "tag", "v2.0.0")
	testutil.WriteFile(t, edited, hello("hello v1"), 0o644) // undo the edit by hand: clean again
	comps[0].Version = "v2.0.0"
	if err := Build(ctx, comps, opt); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(testutil.Run(t, "", nil, opt.Artifact(comps[0]))); got != "hello v2" {
		t.Errorf("clean checkout built %q, want v2", got)
	}

	// A local commit is work too: never moved away from.
	checkout := filepath.Join(work, "hello")
	testutil.WriteFile(t, edited, hello("local commit"), 0o644)
	git(t, checkout, "commit", "-q", "-am", "mine")
	comps[0].Version = "v1.0.0"
	hook.Reset()
	if err := Build(ctx, comps, opt); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(testutil.Run(t, "", nil, opt.Artifact(comps[0]))); got != "local commit" {
		t.Errorf("built %q, want the local commit", got)
	}
	if w := warnings(hook); !strings.Contains(w, "local commits") {
		t.Errorf("no warning about local commits, got %q", w)
	}
}

func TestGitBranchVersionFollowsRemote(t *testing.T) {
	repo := goRepo(t)
	// SOURCE relative to the project root, as a local path in sources.conf.
	opt := Options{WorkDir: t.TempDir(), ProjectRoot: filepath.Dir(repo)}
	comps := []Component{{Type: Git, Name: "hello", Source: "hello", Version: "main",
		Build: BuildSpec{Kind: Go, Arg: "./cmd/hello"}, InstallPath: "/usr/bin/hello"}}
	if err := Build(context.Background(), comps, opt); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, filepath.Join(repo, "cmd/hello/main.go"), hello("main moved"), 0o644)
	git(t, repo, "commit", "-q", "-am", "move")
	if err := Build(context.Background(), comps, opt); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(testutil.Run(t, "", nil, opt.Artifact(comps[0]))); got != "main moved" {
		t.Errorf("built %q, want the branch's new head", got)
	}
}

func TestBuildFailureShowsLogTail(t *testing.T) {
	testutil.RequireTool(t, "go")
	src := t.TempDir()
	testutil.WriteFile(t, filepath.Join(src, "go.mod"), "module example.org/broken\n\ngo 1.21\n", 0o644)
	testutil.WriteFile(t, filepath.Join(src, "main.go"), "package main\n\nfunc main() { undefinedThing() }\n", 0o644)
	opt := Options{WorkDir: t.TempDir(), ProjectRoot: "/"}
	ok := Component{Type: Local, Name: "fine", Source: "/bin/busybox", Build: BuildSpec{Kind: None}, InstallPath: "/bin/fine"}
	bad := Component{Type: Local, Name: "broken", Source: src, Build: BuildSpec{Kind: Go}, InstallPath: "/usr/bin/broken", File: "sources.conf", Line: 9}
	err := Build(context.Background(), []Component{ok, bad}, opt)
	if !errors.Is(err, ErrBuild) {
		t.Fatalf("err = %v, want ErrBuild", err)
	}
	for _, w := range []string{"broken (sources.conf:9)", "undefined: undefinedThing", opt.LogFile(bad)} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%s", w, err)
		}
	}
	if _, serr := os.Stat(opt.Artifact(ok)); serr != nil {
		t.Errorf("the good component was not built alongside: %v", serr)
	}
}

// staticBinary builds a small static program to serve as a release.
func staticBinary(t *testing.T) []byte {
	t.Helper()
	testutil.RequireTool(t, "go")
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "go.mod"), "module example.org/rel\n\ngo 1.21\n", 0o644)
	testutil.WriteFile(t, filepath.Join(dir, "main.go"), hello("released"), 0o644)
	cmd := exec.Command("go", "build", "-o", "rel", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "rel"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tgz(t *testing.T, name string, body []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "rel-1.0/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body))})
	tw.Write(body)
	tw.WriteHeader(&tar.Header{Name: "rel-1.0/README", Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestReleaseComponent(t *testing.T) {
	bin := staticBinary(t)
	archive := tgz(t, "rel-1.0/bin/corex", bin)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/corex":
			w.Write(bin)
		case "/corex.tar.gz":
			w.Write(archive)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	f := download.New(download.Options{CacheDir: t.TempDir(), Backoff: time.Millisecond})
	log, hook := test.NewNullLogger()
	opt := Options{WorkDir: t.TempDir(), Fetcher: f, Log: log}
	md5sum := md5.Sum(bin)
	comps := []Component{
		{Type: Release, Name: "corex", Source: srv.URL + "/corex", Version: "2.1.4", Checksum: sum(bin), Build: BuildSpec{Kind: None}, InstallPath: "/usr/bin/corex"},
		{Type: Release, Name: "corex-tgz", Source: srv.URL + "/corex.tar.gz", Checksum: sum(archive), Build: BuildSpec{Kind: None}, InstallPath: "/usr/bin/corex"},
		// What upstream corex publishes: an MD5 only.
		{Type: Release, Name: "corex-md5", Source: srv.URL + "/corex", Version: "2.1.4", Checksum: "md5:" + hex.EncodeToString(md5sum[:]),
			Build: BuildSpec{Kind: None}, InstallPath: "/usr/bin/corex", File: "config/sources.conf", Line: 22},
	}
	if err := Build(context.Background(), comps, opt); err != nil {
		t.Fatal(err)
	}
	if err := Verify(comps, opt); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := Copy(context.Background(), comps[1:], root, false, opt); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(testutil.Run(t, "", nil, filepath.Join(root, "usr/bin/corex"))); got != "released" {
		t.Errorf("installed release says %q", got)
	}
	var warnings []string
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warnings = append(warnings, e.Message)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "corex-md5 is pinned by md5 only (config/sources.conf:22): weaker than sha256") {
		t.Errorf("warnings %q, want one line about corex-md5's md5 pin", warnings)
	}
	md5Wrong := comps[2]
	md5Wrong.Name, md5Wrong.Checksum = "corex-md5-wrong", "md5:"+strings.Repeat("0", 32)
	if err := Build(context.Background(), []Component{md5Wrong}, opt); !errors.Is(err, download.ErrChecksum) || !strings.Contains(err.Error(), "expected md5 ") {
		t.Errorf("wrong md5: err = %v, want ErrChecksum", err)
	}

	wrong := comps[0]
	wrong.Checksum = strings.Repeat("0", 64)
	wrong.Name = "corex-wrong"
	err := Build(context.Background(), []Component{wrong}, opt)
	if !errors.Is(err, download.ErrChecksum) || !strings.Contains(err.Error(), sum(bin)) {
		t.Errorf("err = %v, want ErrChecksum naming the actual hash", err)
	}
	if _, serr := os.Stat(opt.Artifact(wrong)); !errors.Is(serr, os.ErrNotExist) {
		t.Error("a binary with a wrong checksum was staged")
	}
}

func TestLocalScriptAndMakeComponents(t *testing.T) {
	testutil.RequireTool(t, "make")
	testutil.RequireFile(t, "/bin/busybox")
	project := t.TempDir()
	testutil.WriteFile(t, filepath.Join(project, "scripts/build-tool.sh"), "set -e\ncp /bin/busybox \"$OUT\"\necho built $NAME in $SRC\necho kept > \"$BUILD_DIR/state\"\necho jobs $JOBS\n", 0o755)
	testutil.WriteFile(t, filepath.Join(project, "src/mk/Makefile"), "all:\n\tmkdir -p out && cp /bin/busybox out/mk\n", 0o644)
	opt := Options{WorkDir: t.TempDir(), ProjectRoot: project}
	comps := []Component{
		{Type: Local, Name: "scripted", Source: "src", Build: BuildSpec{Kind: Script, Arg: "scripts/build-tool.sh"}, InstallPath: "/usr/bin/scripted"},
		{Type: Local, Name: "made", Source: "src/mk", Build: BuildSpec{Kind: Make, Arg: "all", Bin: "out/mk"}, InstallPath: "/usr/bin/made"},
	}
	if err := Build(context.Background(), comps, opt); err != nil {
		t.Fatal(err)
	}
	if err := Verify(comps, opt); err != nil {
		t.Fatal(err)
	}
	if log, _ := os.ReadFile(opt.LogFile(comps[0])); !strings.Contains(string(log), "built scripted in "+filepath.Join(project, "src")) || !strings.Contains(string(log), "jobs 1") {
		t.Errorf("script log: %q", log)
	}
	// BUILD_DIR is the component's own, kept for the next build.
	if err := Build(context.Background(), comps[:1], opt); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(opt.WorkDir, ".target", "scripted", "state")); err != nil || string(b) != "kept\n" {
		t.Errorf("BUILD_DIR/state: %q %v", b, err)
	}
}

func TestVerifyReportsEverything(t *testing.T) {
	testutil.RequireFile(t, "/bin/busybox")
	testutil.RequireFile(t, "/bin/ls")
	opt := Options{WorkDir: t.TempDir()}
	put := func(name, from string, mode os.FileMode) Component {
		c := Component{Name: name, InstallPath: "/usr/bin/" + name, File: "sources.conf", Line: len(name)}
		if from != "" {
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			testutil.WriteFile(t, opt.Artifact(c), string(b), mode)
		}
		return c
	}
	script := filepath.Join(t.TempDir(), "s.sh")
	testutil.WriteFile(t, script, "#!/bin/sh\n", 0o755)
	dynOK := put("dynok", "/bin/ls", 0o755)
	dynOK.Dynamic = true
	comps := []Component{
		put("static", "/bin/busybox", 0o755),
		put("missing", "", 0),
		put("dynamic", "/bin/ls", 0o755),
		put("script", script, 0o755),
		put("noexec", "/bin/busybox", 0o644),
		dynOK,
	}
	err := Verify(comps, opt)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []error{ErrMissing, ErrNotStatic, elfbin.ErrNotELF, ErrNotExecutable} {
		if !errors.Is(err, want) {
			t.Errorf("error does not report %v:\n%s", want, err)
		}
	}
	msg := err.Error()
	for _, name := range []string{"missing", "dynamic", "script", "noexec"} {
		if !strings.Contains(msg, "component "+name+" (sources.conf:") {
			t.Errorf("error does not name %s:\n%s", name, msg)
		}
	}
	for _, name := range []string{"component static ", "component dynok "} {
		if strings.Contains(msg, name) {
			t.Errorf("error blames %s:\n%s", name, msg)
		}
	}
}

func TestCopyStaysInsideRoot(t *testing.T) {
	testutil.RequireFile(t, "/bin/busybox")
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	outside := filepath.Join(parent, "outside")
	os.MkdirAll(root, 0o755)
	os.MkdirAll(outside, 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "usr")); err != nil {
		t.Fatal(err)
	}
	opt := Options{WorkDir: t.TempDir()}
	c := Component{Name: "x", InstallPath: "/usr/bin/x"}
	b, _ := os.ReadFile("/bin/busybox")
	testutil.WriteFile(t, opt.Artifact(c), string(b), 0o755)
	if err := Copy(context.Background(), []Component{c}, root, false, opt); err == nil {
		t.Fatal("Copy followed a symlink out of the root")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside the root: %v", ents)
	}
}

// A static PIE (what cargo builds with crt-static, glibc's or musl's) is a
// static executable; a shared library, ET_DYN without an interpreter too,
// is not an executable at all.
func TestVerifyStaticPIE(t *testing.T) {
	gcc := testutil.RequireTool(t, "gcc")
	src := filepath.Join(t.TempDir(), "main.c")
	testutil.WriteFile(t, src, "int main(void) { return 0; }\n", 0o644)
	opt := Options{WorkDir: t.TempDir()}
	build := func(name string, args ...string) Component {
		c := Component{Name: name, InstallPath: "/usr/bin/" + name, File: "sources.conf", Line: 1}
		if err := os.MkdirAll(filepath.Dir(opt.Artifact(c)), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(gcc, append(args, "-o", opt.Artifact(c), src)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
		return c
	}
	pie := build("staticpie", "-static-pie")
	if err := Verify([]Component{pie}, opt); err != nil {
		t.Errorf("static-pie rejected: %v", err)
	}
	lib := build("library", "-shared", "-fPIC")
	if err := os.Chmod(opt.Artifact(lib), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Verify([]Component{lib}, opt)
	if !errors.Is(err, ErrNotExecutable) || !strings.Contains(err.Error(), "a shared library") {
		t.Errorf("shared library: err = %v, want ErrNotExecutable naming a shared library", err)
	}
	dyn := build("dynamicpie", "-pie", "-fPIE")
	if err := Verify([]Component{dyn}, opt); !errors.Is(err, ErrNotStatic) {
		t.Errorf("dynamic PIE: err = %v, want ErrNotStatic", err)
	}
}
