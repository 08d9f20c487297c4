package modules

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// debianTree returns the version of the installed Debian kernel module tree
// (apt package linux-image-amd64), the real data these tests run against.
func debianTree(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/lib/modules/*-amd64")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "modules.dep")); err == nil {
			return filepath.Base(dirs[i])
		}
	}
	testutil.Missing(t, "no Debian module tree /lib/modules/*-amd64 with modules.dep (apt-get install linux-image-amd64)")
	return ""
}

// emptyConfig is a modprobe -C target with no files, so the build host's
// /etc/modprobe.d does not leak into the reference output.
func emptyConfig(t testing.TB) string {
	t.Helper()
	return t.TempDir()
}

// modprobeDepends runs kmod's modprobe --show-depends, the reference for
// Depends, and parses its insmod and builtin lines.
func modprobeDepends(t testing.TB, root, version, config, name string) ([]Entry, bool) {
	t.Helper()
	bin := testutil.RequireTool(t, "modprobe")
	cmd := exec.Command(bin, "-d", root, "-S", version, "-C", config, "--show-depends", name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "not found") {
			return nil, false
		}
		t.Fatalf("modprobe --show-depends %s: %v: %s", name, err, stderr.String())
	}
	marker := "/lib/modules/" + version + "/"
	var es []Entry
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "insmod":
			i := strings.Index(f[1], marker)
			if i < 0 {
				t.Fatalf("modprobe printed a path outside %s: %q", marker, line)
			}
			p := f[1][i+len(marker):]
			es = append(es, Entry{Name: NameFromPath(p), Path: p})
		case len(f) == 2 && f[0] == "builtin":
			es = append(es, Entry{Name: f[1], Builtin: true})
		case len(f) > 0:
			t.Fatalf("unexpected modprobe output line %q", line)
		}
	}
	return es, true
}

func entryLines(es []Entry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.String() + "\n")
	}
	return b.String()
}

// compareWithModprobe checks Depends against modprobe for each name.
func compareWithModprobe(t *testing.T, ix *Index, config string, names []string) {
	t.Helper()
	for _, n := range names {
		want, found := modprobeDepends(t, ix.Root, ix.Version, config, n)
		got, err := ix.Depends(n)
		if !found {
			if err == nil {
				t.Errorf("%s: modprobe does not find it, Depends returned %v", n, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if entryLines(got) != entryLines(want) {
			t.Errorf("%s: Depends differs from modprobe --show-depends\ngot:\n%swant:\n%s", n, entryLines(got), entryLines(want))
		}
	}
}

// TestAllModulesMatchModprobe compares every module of the Debian tree, set
// ZOS_ALL_MODULES=1 to run it (about 30 s of modprobe calls).
func TestAllModulesMatchModprobe(t *testing.T) {
	if os.Getenv("ZOS_ALL_MODULES") == "" {
		t.Skip("set ZOS_ALL_MODULES=1 to compare all modules with modprobe")
	}
	v := debianTree(t)
	ix, err := Load("/", v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	compareWithModprobe(t, ix, emptyConfig(t), ix.Names())
}
