// Package modules resolves kernel modules the way kmod's modprobe does
// (modules.dep, softdeps, aliases, built-ins) against any module tree, not
// just the running kernel's, and copies a resolved closure into an image.
package modules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/logging"
)

// Sources of an Index's dependency data, see Index.Source.
const (
	SourceModulesDep = "modules.dep"
	SourceModinfo    = "modinfo"
)

// ErrNoTree is returned when ROOT/lib/modules/VERSION does not exist.
var ErrNoTree = errors.New("no module tree")

// Options tunes Load.
type Options struct {
	// ConfigPaths are modprobe.d style files or directories (like
	// modprobe -C) whose alias, softdep and blacklist lines apply on top of
	// the tree's modules.softdep. Empty means none: the build host's
	// /etc/modprobe.d says nothing about the image.
	ConfigPaths []string
	// IgnorePostSoftdeps leaves out "softdep post:" modules, which modprobe
	// loads after the module and which are never needed for it to load.
	// The default follows them, as modprobe --show-depends does.
	IgnorePostSoftdeps bool
	// NoStaleCheck trusts modules.dep without comparing it with the module
	// files on disk.
	NoStaleCheck bool
	// Log receives the reason when modules.dep is missing or stale. nil is
	// silent.
	Log logrus.FieldLogger
}

// module is one loadable module of the tree.
type module struct {
	name string
	path string // relative to the module directory
	// deps is the full dependency list in the order kmod walks it (the
	// reverse of the modules.dep line), as indexes into Index.mods.
	deps []int
}

// aliasTarget is one "alias PATTERN MODULE" entry.
type aliasTarget struct {
	pattern  string
	module   string
	priority int
}

type softdep struct {
	pattern   string
	pre, post []string
}

// Index is the parsed metadata of one module tree, ROOT/lib/modules/VERSION.
// It is safe for concurrent use.
type Index struct {
	// Root and Version locate the tree; Dir is ROOT/lib/modules/VERSION.
	Root, Version, Dir string
	// Source says where dependencies came from: SourceModulesDep, or
	// SourceModinfo when modules.dep was missing or stale.
	Source string

	mods   []module
	byName map[string]int

	aliasExact    map[string][]aliasTarget
	aliasWild     map[string][]aliasTarget // by literal prefix
	aliasWildLens []int                    // distinct literal prefix lengths

	builtin        map[string]bool
	builtinAliases map[string][]string // exact alias -> module names
	builtinByAlias map[string]bool     // modules named in builtinAliases

	ignorePost    bool
	configAliases []aliasTarget
	blacklist     map[string]bool
	softdeps      []softdep
	// modinfoSoftdeps stand in for modules.softdep when Source is
	// SourceModinfo.
	modinfoSoftdeps []softdep

	mu     sync.Mutex
	lookup map[string][]match
	soft   map[string]*softResult
}

// Load parses the tree ROOT/lib/modules/VERSION. When modules.dep is absent
// or does not list exactly the module files present, dependencies, aliases
// and softdeps come from each module's .modinfo instead.
func Load(root, version string, opt Options) (*Index, error) {
	dir := filepath.Join(root, "lib", "modules", version)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("load modules of %s: %s: %w", version, dir, ErrNoTree)
	}
	ix := &Index{Root: root, Version: version, Dir: dir, byName: map[string]int{},
		aliasExact: map[string][]aliasTarget{}, aliasWild: map[string][]aliasTarget{},
		builtin: map[string]bool{}, builtinAliases: map[string][]string{}, builtinByAlias: map[string]bool{}, blacklist: map[string]bool{},
		lookup: map[string][]match{}, soft: map[string]*softResult{}, ignorePost: opt.IgnorePostSoftdeps}
	if err := ix.loadBuiltin(); err != nil {
		return nil, err
	}
	reason, err := ix.loadModulesDep(opt.NoStaleCheck)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		ix.Source = SourceModulesDep
		if err := ix.loadAliases(); err != nil {
			return nil, err
		}
	} else {
		logging.OrDiscard(opt.Log).WithField("dir", dir).Warnf("%s; reading dependencies from .modinfo", reason)
		ix.Source = SourceModinfo
		if err := ix.loadFromModinfo(); err != nil {
			return nil, err
		}
	}
	if err := ix.loadConfig(opt.ConfigPaths); err != nil {
		return nil, err
	}
	return ix, nil
}

// Names returns every loadable module name of the tree, sorted.
func (ix *Index) Names() []string {
	out := make([]string, 0, len(ix.mods))
	for _, m := range ix.mods {
		out = append(out, m.name)
	}
	sort.Strings(out)
	return out
}

// Path returns the module file of name relative to Dir, "" if the tree has
// no such loadable module.
func (ix *Index) Path(name string) string {
	if i, ok := ix.byName[Normalize(name)]; ok {
		return ix.mods[i].path
	}
	return ""
}

// IsBuiltin reports whether name is built into the kernel (modules.builtin).
func (ix *Index) IsBuiltin(name string) bool { return ix.builtin[Normalize(name)] }

func (ix *Index) addModule(name, path string) int {
	if i, ok := ix.byName[name]; ok {
		return i
	}
	ix.mods = append(ix.mods, module{name: name, path: path})
	ix.byName[name] = len(ix.mods) - 1
	return len(ix.mods) - 1
}

// loadModulesDep parses modules.dep. It returns a non-empty reason when the
// file is missing or stale, so the caller falls back to .modinfo.
func (ix *Index) loadModulesDep(noStaleCheck bool) (string, error) {
	p := filepath.Join(ix.Dir, "modules.dep")
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "modules.dep is missing", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	type line struct {
		mod  int
		deps []string
	}
	var lines []line
	for n, raw := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSpace(string(raw))
		if s == "" || s[0] == '#' {
			continue
		}
		file, rest, ok := strings.Cut(s, ":")
		if !ok {
			return "", fmt.Errorf("%s:%d: no ':' in %q", p, n+1, s)
		}
		deps := strings.Fields(rest)
		for _, f := range append([]string{file}, deps...) {
			if NameFromPath(f) == "" {
				return "", fmt.Errorf("%s:%d: %q is not a module file", p, n+1, f)
			}
		}
		lines = append(lines, line{ix.addModule(NameFromPath(file), file), deps})
	}
	for _, l := range lines {
		deps := make([]int, len(l.deps))
		for i, d := range l.deps {
			// kmod prepends each dependency, so it walks the line backwards.
			deps[len(deps)-1-i] = ix.addModule(NameFromPath(d), d)
		}
		ix.mods[l.mod].deps = deps
	}
	if noStaleCheck {
		return "", nil
	}
	onDisk, err := ix.scanModuleFiles()
	if err != nil {
		return "", err
	}
	listed := map[string]bool{}
	for _, m := range ix.mods {
		listed[m.path] = true
		if !onDisk[m.path] {
			return fmt.Sprintf("modules.dep lists %s, which does not exist", m.path), nil
		}
	}
	for f := range onDisk {
		if !listed[f] {
			return fmt.Sprintf("modules.dep does not list %s", f), nil
		}
	}
	return "", nil
}

// scanModuleFiles lists the module files below Dir, relative to it.
func (ix *Index) scanModuleFiles() (map[string]bool, error) {
	files := map[string]bool{}
	err := filepath.WalkDir(ix.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// Symlinks such as build/ and source/ point into a kernel tree
		// whose objects are not part of this module set.
		if d.Type()&fs.ModeSymlink != 0 || d.IsDir() || !IsModuleFile(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(ix.Dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan modules in %s: %w", ix.Dir, err)
	}
	return files, nil
}

// loadAliases parses modules.alias. The priority of an entry is the rank of
// its module's first appearance, which is the order depmod gives the
// binary index and so the order kmod returns matches in.
func (ix *Index) loadAliases() error {
	p := filepath.Join(ix.Dir, "modules.alias")
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	rank := map[string]int{}
	for n, raw := range bytes.Split(data, []byte("\n")) {
		f := strings.Fields(string(raw))
		if len(f) == 0 || f[0][0] == '#' {
			continue
		}
		if len(f) != 3 || f[0] != "alias" {
			return fmt.Errorf("%s:%d: want \"alias PATTERN MODULE\", got %q", p, n+1, raw)
		}
		if _, ok := rank[f[2]]; !ok {
			rank[f[2]] = len(rank)
		}
		ix.addAlias(Normalize(f[1]), f[2], rank[f[2]])
	}
	return nil
}

func (ix *Index) addAlias(pattern, mod string, priority int) {
	t := aliasTarget{pattern: pattern, module: mod, priority: priority}
	if !isPattern(pattern) {
		ix.aliasExact[pattern] = append(ix.aliasExact[pattern], t)
		return
	}
	pre := literalPrefix(pattern)
	if !slices.Contains(ix.aliasWildLens, len(pre)) {
		ix.aliasWildLens = append(ix.aliasWildLens, len(pre))
	}
	ix.aliasWild[pre] = append(ix.aliasWild[pre], t)
}

// loadBuiltin reads modules.builtin and the aliases of built-in modules
// from modules.builtin.modinfo.
func (ix *Index) loadBuiltin() error {
	p := filepath.Join(ix.Dir, "modules.builtin")
	data, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", p, err)
	}
	for _, l := range strings.Fields(string(data)) {
		ix.builtin[NameFromPath(l)] = true
	}
	p = filepath.Join(ix.Dir, "modules.builtin.modinfo")
	data, err = os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		key, val, ok := strings.Cut(string(kv), "=")
		mod, field, ok2 := strings.Cut(key, ".")
		if !ok || !ok2 || field != "alias" {
			continue
		}
		a := Normalize(val)
		// depmod gives every built-in alias priority 0 and kmod inserts
		// equal priorities at the front: the last one read comes first.
		ix.builtinAliases[a] = append([]string{Normalize(mod)}, ix.builtinAliases[a]...)
		ix.builtinByAlias[Normalize(mod)] = true
	}
	return nil
}

// loadConfig reads modules.softdep and the modprobe.d style ConfigPaths in
// kmod's order: all files sorted by base name, the first of equal names
// winning, modules.softdep taking part under its own name.
func (ix *Index) loadConfig(paths []string) error {
	type conf struct{ name, path string }
	var files []conf
	seen := map[string]bool{}
	add := func(name, path string) {
		if !seen[name] {
			seen[name] = true
			files = append(files, conf{name, path})
		}
	}
	add("modules.softdep", filepath.Join(ix.Dir, "modules.softdep"))
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			continue // like modprobe, a missing config path is no error
		}
		if !st.IsDir() {
			add(filepath.Base(p), p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return fmt.Errorf("read modprobe config %s: %w", p, err)
		}
		for _, e := range ents {
			n := e.Name()
			if strings.HasPrefix(n, ".") || e.IsDir() || !(strings.HasSuffix(n, ".conf") || strings.HasSuffix(n, ".alias")) {
				continue
			}
			add(n, filepath.Join(p, n))
		}
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].name < files[j].name })
	for _, f := range files {
		if f.name == "modules.softdep" && ix.Source == SourceModinfo {
			ix.softdeps = append(ix.softdeps, ix.modinfoSoftdeps...)
			continue
		}
		if err := ix.parseConfig(f.path); err != nil {
			return err
		}
	}
	return nil
}

// parseConfig reads one modprobe.d file. options, install and remove lines
// are ignored: they change how a module is loaded, not what is loaded.
func (ix *Index) parseConfig(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open modprobe config %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var cont string
	for sc.Scan() {
		line := cont + sc.Text()
		cont = ""
		if strings.HasSuffix(line, "\\") {
			cont = strings.TrimSuffix(line, "\\")
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0][0] == '#' { // a blank line, or one of spaces (found by FuzzIndex)
			continue
		}
		switch {
		case f[0] == "alias" && len(f) >= 3:
			ix.configAliases = append(ix.configAliases, aliasTarget{pattern: Normalize(f[1]), module: Normalize(f[2])})
		case f[0] == "blacklist" && len(f) >= 2:
			ix.blacklist[Normalize(f[1])] = true
		case f[0] == "softdep" && len(f) >= 3:
			ix.softdeps = append(ix.softdeps, parseSoftdep(Normalize(f[1]), f[2:]))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read modprobe config %s: %w", path, err)
	}
	return nil
}

// parseSoftdep reads "pre: a b post: c". Names before any "pre:" or "post:"
// are ignored, as kmod ignores them.
func parseSoftdep(pattern string, words []string) softdep {
	sd := softdep{pattern: pattern}
	var cur *[]string
	for _, w := range words {
		switch w {
		case "pre:":
			cur = &sd.pre
		case "post:":
			cur = &sd.post
		default:
			if cur != nil {
				*cur = append(*cur, w)
			}
		}
	}
	return sd
}
