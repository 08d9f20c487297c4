package zinit

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

type wantProblem struct {
	file string // base name
	key  string
	err  error
	line int    // 0: not checked
	msg  string // substring; "" not checked
}

func (w wantProblem) matches(p *Problem) bool {
	return filepath.Base(p.File) == w.file && p.Key == w.key && errors.Is(p, w.err) &&
		(w.line == 0 || p.Line == w.line) && strings.Contains(p.Msg, w.msg)
}

func checkProblems(t *testing.T, kind string, got []*Problem, want []wantProblem) {
	t.Helper()
	for _, w := range want {
		if !slices.ContainsFunc(got, w.matches) {
			t.Errorf("%s %+v not reported", kind, w)
		}
	}
	if len(got) != len(want) {
		for _, p := range got {
			t.Logf("%s: %v", kind, p)
		}
		t.Errorf("%d %s, want %d", len(got), kind, len(want))
	}
}

const okUnit = "exec: /bin/true\n"

func TestLoadDirRules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string
		errs     []wantProblem
		warnings []wantProblem
	}{
		{name: "valid", files: map[string]string{
			"a.yaml": "exec: /bin/sh -c 'echo a'\ntest: /bin/true\noneshot: false\nshutdown_timeout: 0\nafter: [b]\nsignal:\n  stop: sigkill\nlog: stdout\nenv:\n  A: 1\n  B: x\ndir: /tmp\n",
			"b.yaml": "exec: /bin/true\noneshot: true\nlog: none\n",
		}},
		{name: "yml extension", files: map[string]string{"a.yaml": okUnit, "b.yml": okUnit},
			errs: []wantProblem{{file: "b.yml", err: ErrNotLoaded, msg: "b.yaml"}}},
		{name: "uppercase extension", files: map[string]string{"a.YAML": okUnit, "b.yaml": okUnit},
			errs: []wantProblem{{file: "a.YAML", err: ErrNotLoaded}}},
		{name: "symlinked unit", files: map[string]string{"real.txt": okUnit, "a.yaml@": "real.txt"},
			errs:     []wantProblem{{file: "a.yaml", err: ErrNotLoaded, msg: "symlink"}},
			warnings: []wantProblem{{file: "real.txt", err: ErrIgnored}}},
		{name: "missing exec", files: map[string]string{"a.yaml": "oneshot: true\n"},
			errs: []wantProblem{{file: "a.yaml", key: "exec", err: ErrInvalid, msg: "missing exec"}}},
		{name: "empty exec", files: map[string]string{"a.yaml": "exec: ''\n"},
			errs: []wantProblem{{file: "a.yaml", key: "exec", err: ErrInvalid, line: 1}}},
		{name: "null exec", files: map[string]string{"a.yaml": "exec: ~\n"},
			errs: []wantProblem{{file: "a.yaml", key: "exec", err: ErrInvalid, msg: "null"}}},
		{name: "exec bad quoting", files: map[string]string{"a.yaml": "oneshot: true\nexec: sh -c 'echo hi\n"},
			errs: []wantProblem{{file: "a.yaml", key: "exec", err: ErrInvalid, line: 2, msg: "unbalanced"}}},
		{name: "test bad quoting", files: map[string]string{"a.yaml": "exec: /bin/true\ntest: \"sh -c 'x\"\n"},
			errs: []wantProblem{{file: "a.yaml", key: "test", err: ErrInvalid, msg: "unbalanced"}}},
		{name: "exec is a list", files: map[string]string{"a.yaml": "exec: [a, b]\n"},
			errs: []wantProblem{{file: "a.yaml", key: "exec", err: ErrInvalid, msg: "sequence"}}},
		{name: "oneshot yes", files: map[string]string{"a.yaml": "exec: x\noneshot: yes\n"},
			errs: []wantProblem{{file: "a.yaml", key: "oneshot", err: ErrInvalid, line: 2}}},
		{name: "negative timeout", files: map[string]string{"a.yaml": "exec: x\nshutdown_timeout: -1\n"},
			errs: []wantProblem{{file: "a.yaml", key: "shutdown_timeout", err: ErrInvalid}}},
		{name: "timeout with unit", files: map[string]string{"a.yaml": "exec: x\nshutdown_timeout: 10s\n"},
			errs: []wantProblem{{file: "a.yaml", key: "shutdown_timeout", err: ErrInvalid, msg: `"10s"`}}},
		{name: "after scalar", files: map[string]string{"a.yaml": "exec: x\nafter: b\n", "b.yaml": okUnit},
			errs: []wantProblem{{file: "a.yaml", key: "after", err: ErrInvalid, msg: "after: [b]"}}},
		{name: "after item not a string", files: map[string]string{"a.yaml": "exec: x\nafter: [{b: 1}]\n"},
			errs: []wantProblem{{file: "a.yaml", key: "after[0]", err: ErrInvalid}}},
		{name: "unknown after", files: map[string]string{"a.yaml": "exec: x\nafter: [network]\n", "networkd.yaml": okUnit},
			errs: []wantProblem{{file: "a.yaml", key: "after[0]", err: ErrUnknownDependency, msg: `did you mean "networkd"`}}},
		{name: "cycle", files: map[string]string{
			"a.yaml": "exec: x\nafter: [b]\n", "b.yaml": "exec: x\nafter: [c]\n", "c.yaml": "exec: x\nafter: [a]\n", "d.yaml": "exec: x\nafter: [a]\n"},
			errs: []wantProblem{{file: "a.yaml", key: "after", err: ErrCycle, msg: "a -> b -> c -> a"}}},
		{name: "self cycle", files: map[string]string{"a.yaml": "exec: x\nafter: [a]\n"},
			errs: []wantProblem{{file: "a.yaml", key: "after", err: ErrCycle, msg: "a -> a"}}},
		{name: "two cycles", files: map[string]string{
			"a.yaml": "exec: x\nafter: [b, c]\n", "b.yaml": "exec: x\nafter: [a]\n", "c.yaml": "exec: x\nafter: [a]\n"},
			errs: []wantProblem{{file: "a.yaml", key: "after", err: ErrCycle, msg: "a -> b -> a"}, {file: "a.yaml", key: "after", err: ErrCycle, msg: "a -> c -> a"}}},
		{name: "signal without SIG", files: map[string]string{"a.yaml": "exec: x\nsignal:\n  stop: TERM\n"},
			errs: []wantProblem{{file: "a.yaml", key: "signal.stop", err: ErrInvalid, line: 3, msg: "SIGTERM"}}},
		{name: "signal number", files: map[string]string{"a.yaml": "exec: x\nsignal: {stop: 9}\n"},
			errs: []wantProblem{{file: "a.yaml", key: "signal.stop", err: ErrInvalid}}},
		{name: "signal scalar", files: map[string]string{"a.yaml": "exec: x\nsignal: SIGKILL\n"},
			errs: []wantProblem{{file: "a.yaml", key: "signal", err: ErrInvalid}}},
		{name: "log capitalised", files: map[string]string{"a.yaml": "exec: x\nlog: Ring\n"},
			errs: []wantProblem{{file: "a.yaml", key: "log", err: ErrInvalid, msg: "lowercase"}}},
		{name: "log null", files: map[string]string{"a.yaml": "exec: x\nlog: null\n"},
			errs: []wantProblem{{file: "a.yaml", key: "log", err: ErrInvalid, msg: "none"}}},
		{name: "log file", files: map[string]string{"a.yaml": "exec: x\nlog: /var/log/a\n"},
			errs: []wantProblem{{file: "a.yaml", key: "log", err: ErrInvalid}}},
		{name: "env list", files: map[string]string{"a.yaml": "exec: x\nenv: [A=1]\n"},
			errs: []wantProblem{{file: "a.yaml", key: "env", err: ErrInvalid}}},
		{name: "env nested", files: map[string]string{"a.yaml": "exec: x\nenv:\n  A: {b: 1}\n"},
			errs: []wantProblem{{file: "a.yaml", key: "env.A", err: ErrInvalid}}},
		{name: "dir list", files: map[string]string{"a.yaml": "exec: x\ndir: [a]\n"},
			errs: []wantProblem{{file: "a.yaml", key: "dir", err: ErrInvalid}}},
		{name: "duplicate key", files: map[string]string{"a.yaml": "exec: x\nexec: y\n"},
			errs: []wantProblem{{file: "a.yaml", key: "exec", err: ErrInvalid, line: 2, msg: "duplicate"}}},
		{name: "not a mapping", files: map[string]string{"a.yaml": "- exec: x\n"},
			errs: []wantProblem{{file: "a.yaml", err: ErrInvalid, msg: "mapping"}}},
		{name: "yaml syntax", files: map[string]string{"a.yaml": "exec: x\nafter: [b\n"},
			errs: []wantProblem{{file: "a.yaml", err: ErrInvalid, msg: "YAML"}}},
		{name: "empty file", files: map[string]string{"a.yaml": ""},
			errs: []wantProblem{{file: "a.yaml", err: ErrInvalid, msg: "empty"}}},
		{name: "two documents", files: map[string]string{"a.yaml": "exec: x\n---\nexec: y\n"},
			errs: []wantProblem{{file: "a.yaml", err: ErrInvalid, msg: "more than one"}}},
		{name: "missing script", files: map[string]string{"a.yaml": "exec: /bin/sh /etc/zinit/init/a.sh\n", "init/b.sh": "echo b\n"},
			errs: []wantProblem{{file: "a.yaml", key: "exec", err: ErrInvalid, msg: "/etc/zinit/init/a.sh"}}},
		{name: "script syntax", files: map[string]string{"a.yaml": okUnit, "init/bad.sh": "echo ok\nif true; then\necho\n"},
			errs: []wantProblem{{file: "bad.sh", err: ErrInvalid, msg: "shell syntax"}}},
		{name: "every problem at once", files: map[string]string{
			"a.yaml": "exec: sh -c 'unterminated\noneshot: maybe\nlog: RING\nsignal: {stop: kill}\nafter: [ghost, a]\n",
			"b.yml":  okUnit},
			errs: []wantProblem{
				{file: "a.yaml", key: "exec", err: ErrInvalid},
				{file: "a.yaml", key: "oneshot", err: ErrInvalid},
				{file: "a.yaml", key: "log", err: ErrInvalid},
				{file: "a.yaml", key: "signal.stop", err: ErrInvalid},
				{file: "a.yaml", key: "after[0]", err: ErrUnknownDependency},
				{file: "a.yaml", key: "after", err: ErrCycle},
				{file: "b.yml", err: ErrNotLoaded},
			}},
		{name: "unknown keys warn", files: map[string]string{"a.yaml": "exec: x\nafer: [b]\nrestart: always\nsignal: {stp: SIGTERM}\n", "b.yaml": okUnit},
			warnings: []wantProblem{
				{file: "a.yaml", key: "afer", err: ErrIgnored, line: 2, msg: `did you mean "after"`},
				{file: "a.yaml", key: "restart", err: ErrIgnored, msg: "always restarts"},
				{file: "a.yaml", key: "signal.stp", err: ErrIgnored, msg: `"stop"`},
			}},
		{name: "shell syntax without shell warns", files: map[string]string{"a.yaml": "exec: udevadm trigger && udevadm settle\n"},
			warnings: []wantProblem{{file: "a.yaml", key: "exec", err: ErrIgnored, msg: "sh -c"}}},
		{name: "test on oneshot warns", files: map[string]string{"a.yaml": "exec: x\noneshot: true\ntest: y\n", "README.md": "x"},
			warnings: []wantProblem{{file: "a.yaml", key: "test", err: ErrIgnored}, {file: "README.md", err: ErrIgnored}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			testutil.WriteTree(t, dir, tc.files)
			set, err := LoadDir(dir)
			if len(tc.errs) == 0 && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(tc.errs) > 0 && !errors.Is(err, tc.errs[0].err) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.errs[0].err)
			}
			checkProblems(t, "errors", Problems(err), tc.errs)
			checkProblems(t, "warnings", set.Warnings, tc.warnings)
		})
	}
}

func TestParseDefaultsAndValues(t *testing.T) {
	u, warnings, err := Parse("dir/svc.name.yaml", []byte("exec: >-\n  /bin/sh -c\n  'echo \"$HOME\"'\nafter: [x]\nenv: {N: 5, E: }\n"))
	if err != nil || len(warnings) != 0 {
		t.Fatal(err, warnings)
	}
	if u.Name != "svc.name" {
		t.Errorf("name = %q", u.Name)
	}
	if !slices.Equal(u.Argv, []string{"/bin/sh", "-c", `echo "$HOME"`}) {
		t.Errorf("argv = %q", u.Argv)
	}
	if u.ShutdownTimeout != DefaultShutdownTimeout || u.SignalStop != DefaultSignalStop || u.Log != DefaultLog || u.Oneshot {
		t.Errorf("defaults not applied: %+v", u)
	}
	if u.Env["N"] != "5" || u.Env["E"] != "" || len(u.Env) != 2 {
		t.Errorf("env = %v", u.Env)
	}
}

func TestProblemString(t *testing.T) {
	_, _, err := Parse("/x/a.yaml", []byte("exec: x\nlog: file\n"))
	ps := Problems(err)
	if len(ps) != 1 || ps[0].Error() != `/x/a.yaml:2: log: must be none, ring or stdout, not "file"` {
		t.Errorf("problems = %v", ps)
	}
}

func TestInstallReplacesPreviousUnits(t *testing.T) {
	ctx := context.Background()
	src, root := t.TempDir(), t.TempDir()
	testutil.WriteTree(t, src, map[string]string{
		"a.yaml": "exec: /bin/sh /etc/zinit/init/a.sh\n", "b.yaml": okUnit,
		"init/a.sh": "echo a\n", "init/old.sh": "echo old\n", "notes.txt": "not installed",
	})
	// Leftovers of an interrupted earlier run must not get in the way.
	testutil.WriteTree(t, root, map[string]string{"etc/.zinit.new/junk.yaml": okUnit, "etc/.zinit.old/x": ""})
	if _, err := Install(ctx, src, root); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(src, "b.yaml"))
	os.Remove(filepath.Join(src, "init/old.sh"))
	set, err := Install(ctx, src, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Warnings) != 1 {
		t.Errorf("warnings = %v", set.Warnings)
	}
	want := map[string]os.FileMode{"etc/zinit/a.yaml": 0o644, "etc/zinit/init/a.sh": 0o755}
	var got []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, p[len(root)+1:])
		}
		return err
	})
	if !slices.Equal(got, []string{"etc/zinit/a.yaml", "etc/zinit/init/a.sh"}) {
		t.Errorf("installed files = %v", got)
	}
	for rel, mode := range want {
		st, err := os.Stat(filepath.Join(root, rel))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %v", rel, st.Mode(), err, mode)
		}
	}
	if _, err := ValidateRoot(root); err != nil {
		t.Errorf("ValidateRoot after Install: %v", err)
	}
}

// A profile's units lie over the shipped ones: new units and scripts are
// added, same-named ones replaced, and the whole is checked as one set.
func TestInstallDirsOverlay(t *testing.T) {
	ctx := context.Background()
	shipped, profile, root := t.TempDir(), t.TempDir(), t.TempDir()
	testutil.WriteTree(t, shipped, map[string]string{
		"a.yaml": "exec: /bin/sh /etc/zinit/init/a.sh\n", "b.yaml": okUnit,
		"init/a.sh": "echo shipped\n", "init/lib.sh": "echo lib\n",
	})
	testutil.WriteTree(t, profile, map[string]string{
		"b.yaml":    "exec: /bin/false\n",
		"c.yaml":    "exec: /bin/sh /etc/zinit/init/c.sh\nafter:\n  - a\n",
		"init/a.sh": "echo profile\n", "init/c.sh": "echo c\n",
	})
	set, err := InstallDirs(ctx, root, shipped, profile)
	if err != nil {
		t.Fatal(err)
	}
	if names := set.Names(); !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("units = %v", names)
	}
	for rel, want := range map[string]string{
		"etc/zinit/b.yaml": "exec: /bin/false\n", "etc/zinit/c.yaml": "exec: /bin/sh /etc/zinit/init/c.sh\nafter:\n  - a\n",
		"etc/zinit/init/a.sh": "echo profile\n", "etc/zinit/init/lib.sh": "echo lib\n", "etc/zinit/init/c.sh": "echo c\n",
	} {
		if b, err := os.ReadFile(filepath.Join(root, rel)); err != nil || string(b) != want {
			t.Errorf("%s = %q %v, want %q", rel, b, err, want)
		}
	}
	// A profile unit must fit the shipped set: its `after` names are checked
	// against all of it.
	testutil.WriteTree(t, profile, map[string]string{"d.yaml": "exec: /bin/true\nafter:\n  - nope\n"})
	if _, err := InstallDirs(ctx, root, shipped, profile); !errors.Is(err, ErrUnknownDependency) || !strings.Contains(err.Error(), shipped+" + "+profile) {
		t.Errorf("unknown dependency in the profile: %v", err)
	}
}

func TestInstallRefusesInvalidUnitsAndKeepsOld(t *testing.T) {
	ctx := context.Background()
	src, root := t.TempDir(), t.TempDir()
	testutil.WriteTree(t, src, map[string]string{"a.yaml": okUnit})
	if _, err := Install(ctx, src, root); err != nil {
		t.Fatal(err)
	}
	testutil.WriteTree(t, src, map[string]string{"b.yml": okUnit})
	if _, err := Install(ctx, src, root); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Install with a .yml file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/zinit/a.yaml")); err != nil {
		t.Errorf("previous units lost after a refused install: %v", err)
	}
	if _, err := Install(ctx, t.TempDir(), root); !errors.Is(err, ErrInvalid) {
		t.Errorf("Install of an empty directory: %v", err)
	}
}

func TestValidateRootMissing(t *testing.T) {
	if _, err := ValidateRoot(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ValidateRoot without /etc/zinit: %v", err)
	}
}

// TestShippedUnits validates the project's own zinit/ folder with the same
// rules the build applies.
func TestShippedUnits(t *testing.T) {
	set, err := LoadDir(filepath.Join("..", "..", "zinit"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range set.Warnings {
		t.Errorf("warning: %v", w)
	}
	for _, name := range []string{"udevd", "udev-trigger", "depmod", "modules-stage2", "network", "getty-ttyS0", "getty-tty1", "haveged", "sshd"} {
		if set.Unit(name) == nil {
			t.Errorf("unit %s missing", name)
		}
	}
	for _, u := range set.Units {
		data, _ := os.ReadFile(u.File)
		if !strings.HasPrefix(string(data), "# "+u.Name+": ") {
			t.Errorf("%s does not start with a one-line comment saying what it is for", u.File)
		}
		// zinit may run without PATH: the program must be absolute.
		if !filepath.IsAbs(u.Argv[0]) {
			t.Errorf("%s: program %q is not an absolute path", u.File, u.Argv[0])
		}
	}
	if u := set.Unit("modules-stage2"); u == nil || !u.Oneshot || !slices.Contains(u.After, "udev-trigger") {
		t.Errorf("modules-stage2 must be a oneshot after udev-trigger: %+v", u)
	}
	// An independent parser: busybox's own shell, as in the image.
	if _, err := os.Stat("/bin/busybox"); err == nil {
		for _, name := range set.Scripts {
			script := filepath.Join(set.Dir, "init", name)
			if out, err := exec.Command("/bin/busybox", "sh", "-n", script).CombinedOutput(); err != nil {
				t.Errorf("busybox sh -n %s: %v: %s", script, err, out)
			}
		}
	} else {
		testutil.Missing(t, "/bin/busybox (busybox-static) to syntax-check the unit scripts")
	}
}

func BenchmarkLoadDirShipped(b *testing.B) {
	for b.Loop() {
		if _, err := LoadDir(filepath.Join("..", "..", "zinit")); err != nil {
			b.Fatal(err)
		}
	}
}
