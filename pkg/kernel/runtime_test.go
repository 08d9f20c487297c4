package kernel

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"mvdan.cc/sh/v3/syntax"
)

const projectRoot = "../.."

// shellBuiltins are POSIX and busybox ash builtins: no program runs.
var shellBuiltins = []string{".", ":", "[", "test", "break", "cd", "command", "continue", "echo", "eval", "exec",
	"exit", "export", "read", "readonly", "return", "set", "shift", "trap", "umask", "unset", "wait", "local"}

// scriptCommands parses a POSIX shell script and returns the functions it
// defines and the literal words of each command it runs.
func scriptCommands(t *testing.T, path string) (funcs []string, calls [][]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(bytes.NewReader(data), path)
	if err != nil {
		t.Fatal(err)
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.FuncDecl:
			funcs = append(funcs, n.Name.Value)
		case *syntax.CallExpr:
			var w []string
			for _, a := range n.Args {
				w = append(w, a.Lit())
			}
			if len(w) > 0 {
				calls = append(calls, w)
			}
		}
		return true
	})
	return funcs, calls
}

// runtimePrograms returns, for each of scripts, the programs it runs: the
// literal command words that are neither builtins nor functions of the
// scripts (lib.sh's are shared), and the NAME of `find_cmd NAME` and
// `command -v NAME`, through which the units run programs found at runtime.
func runtimePrograms(t *testing.T, scripts []string) map[string][]string {
	t.Helper()
	funcs := map[string]bool{}
	calls := map[string][][]string{}
	for _, s := range scripts {
		fs, cs := scriptCommands(t, s)
		for _, f := range fs {
			funcs[f] = true
		}
		calls[s] = cs
	}
	out := map[string][]string{}
	for s, cs := range calls {
		for _, w := range cs {
			switch {
			case w[0] == "find_cmd" && len(w) > 1 && w[1] != "":
				out[s] = append(out[s], w[1])
			case w[0] == "command" && len(w) > 2 && w[1] == "-v" && w[2] != "":
				out[s] = append(out[s], w[2])
			}
			if w[0] != "" && !funcs[w[0]] && !slices.Contains(shellBuiltins, w[0]) {
				out[s] = append(out[s], filepath.Base(w[0]))
			}
		}
		slices.Sort(out[s])
		out[s] = slices.Compact(out[s])
	}
	return out
}

// runtimeScripts are /init and every unit script, the profiles' included.
func runtimeScripts(t *testing.T) []string {
	t.Helper()
	scripts := []string{filepath.Join(projectRoot, "config", "init")}
	for _, pattern := range []string{"zinit/init/*.sh", "config/profiles/*/zinit/init/*.sh"} {
		m, err := filepath.Glob(filepath.Join(projectRoot, pattern))
		if err != nil {
			t.Fatal(err)
		}
		scripts = append(scripts, m...)
	}
	if len(scripts) < 5 {
		t.Fatalf("found only %v", scripts)
	}
	return scripts
}

// Every program /init and the units run is accounted for: RuntimeNeeds
// says what it needs from the kernel, or BasePrograms says it needs
// nothing special. A new program in a unit fails here until someone says.
func TestRuntimeNeedsCoverTheUnits(t *testing.T) {
	seen := map[string]bool{}
	for s, programs := range runtimePrograms(t, runtimeScripts(t)) {
		for _, p := range programs {
			seen[p] = true
			if _, ok := RuntimeNeeds[p]; !ok && !slices.Contains(BasePrograms, p) {
				t.Errorf("%s runs %s: add its kernel needs to RuntimeNeeds, or add it to BasePrograms", s, p)
			}
		}
	}
	// The derivation must find what the units are known to run.
	for _, p := range []string{"udhcpc", "rfs", "modprobe", "mount", "udevd", "sshd"} {
		if !seen[p] {
			t.Errorf("the scripts' programs lack %s: the derivation misses commands", p)
		}
	}
}

// bootModules reads the module names of a modules.conf (stage1:NAME or
// stage2:NAME lines).
func bootModules(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if _, rest, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			name, _, _ := strings.Cut(rest, ":")
			out = append(out, name)
		}
	}
	return out
}

// The production config and the offline profile's meet every need, with
// the modules each loads at boot.
func TestShippedConfigsMeetRuntimeNeeds(t *testing.T) {
	for _, dir := range []string{"config", "config/profiles/offline"} {
		t.Run(dir, func(t *testing.T) {
			cfg, err := ReadConfig(filepath.Join(projectRoot, dir, "kernel.config"))
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range CheckRuntime(cfg, bootModules(t, filepath.Join(projectRoot, dir, "modules.conf"))) {
				t.Errorf("%s/kernel.config: %s", dir, u)
			}
		})
	}
}

func TestCheckRuntime(t *testing.T) {
	cfg := &Config{values: map[string]string{}}
	for _, needs := range RuntimeNeeds {
		for _, n := range needs {
			cfg.Set(n.Option, "y")
		}
	}
	if u := CheckRuntime(cfg, nil); len(u) != 0 {
		t.Fatalf("all set, still unmet: %v", u)
	}
	cfg.Set("CONFIG_UNIX", "n")
	cfg.Set("CONFIG_FUSE_FS", "m")
	cfg.Set("CONFIG_PACKET", "m")
	got := CheckRuntime(cfg, []string{"af-packet"}) // '-' and '_' alike
	if len(got) != 2 || got[0].Option != "CONFIG_FUSE_FS" || got[1].Option != "CONFIG_UNIX" {
		t.Fatalf("unmet = %v", got)
	}
	if s := got[1].String(); !strings.Contains(s, "CONFIG_UNIX=n: needed by udevadm, udevd, zinit: ") {
		t.Errorf("message: %s", s)
	}
	if s := got[0].String(); !strings.Contains(s, "module fuse is not loaded at boot") || !strings.Contains(s, "needed by rfs") {
		t.Errorf("message: %s", s)
	}
	if got := CheckRuntime(cfg, []string{"fuse", "af_packet"}); len(got) != 1 {
		t.Errorf("with fuse and af_packet loaded at boot: %v", got)
	}
}

// The offline self-test loads a module only the modules flist carries:
// the profile's kernel builds it as a module and modules.conf (so the
// initramfs) leaves it out.
func TestOfflineSelfTestModuleIsFlistOnly(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(projectRoot, "config/profiles/offline/zinit/init/selftest.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^flist_module=\$\{[^:]+:-(\w+)\}`).FindSubmatch(script)
	if m == nil {
		t.Fatal("selftest.sh sets no default flist_module")
	}
	module := string(m[1])
	symbol := map[string]string{"dummy": "CONFIG_DUMMY", "tun": "CONFIG_TUN", "loop": "CONFIG_BLK_DEV_LOOP"}[module]
	if symbol == "" {
		t.Fatalf("selftest.sh loads %s: add its CONFIG_ symbol here", module)
	}
	cfg, err := ReadConfig(filepath.Join(projectRoot, "config/profiles/offline/kernel.config"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := cfg.Get(symbol); v != "m" {
		t.Errorf("offline kernel.config: %s=%s, want m", symbol, v)
	}
	if slices.Contains(bootModules(t, filepath.Join(projectRoot, "config/profiles/offline/modules.conf")), module) {
		t.Errorf("offline modules.conf loads %s at boot: the initramfs would carry it", module)
	}
}
