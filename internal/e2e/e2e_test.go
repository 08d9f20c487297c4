// Package e2e tests the product the way a maintainer uses it: the mage
// targets through the zero-install entry point (`go run magefile.go`), the
// compatibility scripts, and a whole `mage build` of the offline profile
// booted under QEMU. Each test works on a copy of the repository, as a fresh
// clone would be.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/pipeline"
	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// repoRoot is the repository under test.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// cloneRepo copies the repository's files into a temporary directory, as
// a fresh clone would be (see copyRepo).
func cloneRepo(t testing.TB) string {
	t.Helper()
	dst := t.TempDir()
	if err := copyRepo(repoRoot(t), dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// copyRepo copies the repository's files (tracked, or new and not ignored:
// what a commit of the work tree would hold) from src into dst. A file
// already in dst with the same content is left alone, so refreshing a kept
// build does not touch what did not change.
func copyRepo(src, dst string) error {
	out, err := exec.Command("git", "-C", src, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		st, err := os.Lstat(filepath.Join(src, name))
		if err != nil {
			continue // deleted in the work tree
		}
		p := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if st.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(filepath.Join(src, name))
			os.Remove(p)
			os.Symlink(target, p)
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return err
		}
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
			if err := os.Chmod(p, st.Mode().Perm()); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, b, st.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// run runs a command in dir and returns its combined output.
func run(t testing.TB, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// mage runs a target through the zero-install entry point.
func mage(t testing.TB, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	goTool := testutil.RequireTool(t, "go")
	return run(t, dir, env, goTool, append([]string{"run", "magefile.go"}, args...)...)
}

// Every stage of the original build.sh has a target, and every target a
// description a maintainer can read in `mage -l`.
func TestMageListsTargets(t *testing.T) {
	out, err := mage(t, repoRoot(t), nil, "-l")
	if err != nil {
		t.Fatalf("go run magefile.go -l: %v\n%s", err, out)
	}
	for _, target := range []string{
		"alpine:extract", "alpine:configure", "alpine:packages", "alpine:firmware",
		"components:build", "components:verify", "kernel:modules", "initramfs:init",
		"components:copy", "zinit:setup", "modules:setup", "modules:copy", "initramfs:cleanup",
		"initramfs:validate", "rfs:flists", "initramfs:create", "initramfs:test", "kernel:build",
		"build*", "status", "reset", "clean", "config", "graph",
		"kernel:fullVersion", "modules:resolve", "firmware:report", "initramfs:pack", "initramfs:check",
		"initramfs:list", "rfs:pack", "rfs:unpack", "rfs:tree", "rfs:inspect", "rfs:verify", "rfs:mount",
		"rfs:packModules", "rfs:packFirmware", "rfs:upload", "rfs:stores", "rfs:storesAdd", "rfs:storesSet", "rfs:storesDelete",
		"zinit:check", "fixtures:offline",
		"bench:initramfs", "bench:rfs", "image:sbom", "image:diff",
		"cache:status", "cache:prune",
	} {
		re := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(target) + `\s+\S.{10,}$`)
		if !re.MatchString(out) {
			t.Errorf("mage -l has no described target %s", target)
		}
	}
	// The pipeline's table names, for each stage, the target that runs it.
	for stage, target := range pipeline.StageTargets() {
		re := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(target) + `\s+.*\(stage ` + stage + `\)\.?$`)
		if !re.MatchString(out) {
			t.Errorf("mage -l: target %s does not say it runs stage %s", target, stage)
		}
	}
}

// The mage binary links no test code: packages that import testing (test
// helpers, the S3 test server's StartT) stay out of the product.
func TestMageLinksNoTestCode(t *testing.T) {
	goTool := testutil.RequireTool(t, "go")
	out, err := run(t, repoRoot(t), nil, goTool, "list", "-deps", "-tags", "mage", "./magefiles")
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(out) {
		if pkg == "testing" || strings.HasSuffix(pkg, "/internal/s3test") || strings.HasSuffix(pkg, "/internal/testutil") {
			t.Errorf("the mage targets link %s", pkg)
		}
	}
}

// A malformed build.conf fails every target, naming file, line and key,
// before anything is written.
func TestMalformedBuildConfFailsAnyTarget(t *testing.T) {
	dir := cloneRepo(t)
	conf := filepath.Join(dir, "config", "build.conf")
	b, _ := os.ReadFile(conf)
	lines := strings.Split(string(b), "\n")
	lineNo := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "ENABLE_STRIP=") {
			lines[i], lineNo = `ENABLE_STRIP="yes please"`, i+1
		}
	}
	os.WriteFile(conf, []byte(strings.Join(lines, "\n")), 0o644)
	want := "config/build.conf:" + strconv.Itoa(lineNo) + `: ENABLE_STRIP: want true or false, got "yes please"`
	for _, target := range []string{"build", "status", "alpine:extract", "kernel:fullVersion", "clean"} {
		out, err := mage(t, dir, nil, target)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("mage %s: err %v, output:\n%s\nwant %q", target, err, out, want)
		}
	}
	for _, d := range []string{"initramfs", "dist", ".build", "kernel"} {
		if _, err := os.Stat(filepath.Join(dir, d)); err == nil {
			t.Errorf("%s was created although the config is invalid", d)
		}
	}
}

// Config a maintainer brings from the original fails every target with what
// to do: a sources.conf line in the old form shows the format and an
// example line; units in config/zinit/ name their new place.
func TestMalformedOriginalConfig(t *testing.T) {
	dir := cloneRepo(t)
	sources := filepath.Join(dir, "config", "sources.conf")
	b, _ := os.ReadFile(sources)
	lines := strings.Count(string(b), "\n")
	os.WriteFile(sources, append(b, "git:zinit:https://github.com/threefoldtech/zinit:v0.2.28:build_zinit\n"...), 0o644)
	os.MkdirAll(filepath.Join(dir, "config", "zinit", "init"), 0o755)
	os.WriteFile(filepath.Join(dir, "config", "zinit", "rfs-modules.yaml"), []byte("exec: sh /etc/zinit/init/modules.sh\n"), 0o644)
	out, err := mage(t, dir, nil, "status")
	for _, want := range []string{
		"config/sources.conf:" + strconv.Itoa(lines+1) + ": got 1 fields, in the original's colon- or pipe-separated form",
		"each line is TYPE NAME SOURCE VERSION BUILD INSTALL_PATH [SHA256] [dynamic], separated by blanks",
		"git zinit https://github.com/threefoldtech/zinit v0.2.28 cargo-musl:zinit /sbin/zinit",
		"config/zinit/ holds 2 entries, which are not read: the zinit units and their init/*.sh scripts now live in zinit/",
	} {
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("mage status: err %v, output:\n%s\nwant %q", err, out, want)
		}
	}
}

// The old entry points still work and say what replaced them.
func TestCompatibilityScripts(t *testing.T) {
	dir := repoRoot(t)
	for _, script := range []string{"scripts/build.sh", "scripts/clean.sh", "scripts/rebuild-after-zinit.sh"} {
		out, err := run(t, dir, nil, script, "--help")
		if err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: %v\n%s", script, err, out)
		}
	}
	out, err := run(t, dir, nil, "scripts/build.sh", "--bogus")
	if err == nil || !strings.Contains(out, "unknown option: --bogus") {
		t.Errorf("build.sh --bogus: %v\n%s", err, out)
	}
}
