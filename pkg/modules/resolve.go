package modules

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/nearest"
)

// ErrUnknownModule is wrapped by the error for a name that is neither a
// module, an alias nor built into the kernel.
var ErrUnknownModule = errors.New("unknown module")

// UnknownError names a module that was not found and the nearest names the
// tree does have.
type UnknownError struct {
	Name    string
	Dir     string
	Nearest []string
}

func (e *UnknownError) Error() string {
	s := fmt.Sprintf("module %s not found in %s", e.Name, e.Dir)
	if len(e.Nearest) > 0 {
		s += " (nearest: " + strings.Join(e.Nearest, ", ") + ")"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrUnknownModule) true.
func (e *UnknownError) Unwrap() error { return ErrUnknownModule }

// Entry is one module of a load sequence.
type Entry struct {
	// Name is the module name as modprobe takes it ('_' form).
	Name string
	// Path is the module file relative to lib/modules/VERSION; "" for a
	// built-in module.
	Path    string
	Builtin bool
}

// String is the path, or "builtin:NAME" for a built-in module.
func (e Entry) String() string {
	if e.Builtin {
		return "builtin:" + e.Name
	}
	return e.Path
}

// Closure is a set of modules in load order: every module comes after the
// modules it needs (including softdep pre: modules), each module once.
type Closure struct {
	Version string
	Entries []Entry
}

// Modules returns the loadable (not built-in) entries.
func (c Closure) Modules() []Entry {
	var out []Entry
	for _, e := range c.Entries {
		if !e.Builtin {
			out = append(out, e)
		}
	}
	return out
}

// Builtin returns the names of the built-in entries.
func (c Closure) Builtin() []string {
	var out []string
	for _, e := range c.Entries {
		if e.Builtin {
			out = append(out, e.Name)
		}
	}
	return out
}

// Lines formats the closure one entry a line as `mage modules:resolve`
// prints it: a path relative to lib/modules/VERSION, or builtin:NAME.
func (c Closure) Lines() []string {
	out := make([]string, len(c.Entries))
	for i, e := range c.Entries {
		out[i] = e.String()
	}
	return out
}

// Resolve loads the tree ROOT/lib/modules/VERSION and resolves names.
func Resolve(root, version string, names []string, opt Options) (Closure, error) {
	ix, err := Load(root, version, opt)
	if err != nil {
		return Closure{}, err
	}
	return ix.Resolve(names)
}

// Resolve returns the union of the load sequences of names (see Depends),
// in order, each module once. Every unknown name is reported, each with
// its nearest names.
func (ix *Index) Resolve(names []string) (Closure, error) {
	c := Closure{Version: ix.Version}
	seen := map[string]bool{}
	var errs []error
	for _, n := range names {
		seq, err := ix.Depends(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(seq) == 0 {
			// modprobe succeeds silently here (a blacklisted alias, an
			// alias of a module the tree lacks); a build must not.
			errs = append(errs, fmt.Errorf("module %s: %w: it names nothing loadable or built in in %s", n, ErrUnknownModule, ix.Dir))
			continue
		}
		for _, e := range seq {
			if !seen[e.Name] {
				seen[e.Name] = true
				c.Entries = append(c.Entries, e)
			}
		}
	}
	return c, errors.Join(errs...)
}

// Depends returns what `modprobe -d ROOT -S VERSION -C CONFIG --show-depends
// NAME` lists, in its order: one Entry per insmod or builtin line. NAME may
// be a module name (with '-' or '_'), an alias or a built-in module.
func (ix *Index) Depends(name string) ([]Entry, error) {
	ms := ix.find(Normalize(name))
	if len(ms) == 0 {
		cands := ix.Names()
		for b := range ix.builtin {
			cands = append(cands, b)
		}
		return nil, &UnknownError{Name: name, Dir: ix.Dir, Nearest: nearest.Names(name, cands, 5)}
	}
	var out []Entry
	for _, m := range ms {
		if m.viaAlias && ix.blacklist[m.name] {
			continue
		}
		w := walker{ix: ix, visited: map[string]bool{}}
		w.probe(m.name)
		for _, n := range w.order {
			if p := ix.Path(n); p != "" {
				out = append(out, Entry{Name: n, Path: p})
			} else if ix.builtin[n] || ix.builtinByAlias[n] {
				out = append(out, Entry{Name: n, Builtin: true})
			}
		}
	}
	return out, nil
}

// match is one module a name resolves to.
type match struct {
	name     string
	viaAlias bool
}

// find is kmod_module_new_from_lookup: the first of config aliases, module
// names, the alias index, built-in names and built-in aliases that knows
// the (normalized) name wins. (modprobe also looks up "symbol:NAME" and
// install commands; neither names a module in modules.conf.)
func (ix *Index) find(name string) []match {
	ix.mu.Lock()
	ms, ok := ix.lookup[name]
	ix.mu.Unlock()
	if ok {
		return ms
	}
	ms = ix.findUncached(name)
	ix.mu.Lock()
	ix.lookup[name] = ms
	ix.mu.Unlock()
	return ms
}

func (ix *Index) findUncached(name string) []match {
	var ms []match
	for _, a := range ix.configAliases {
		if fnmatch(a.pattern, name) {
			ms = append(ms, match{name: a.module, viaAlias: true})
		}
	}
	if len(ms) > 0 {
		return ms
	}
	if _, ok := ix.byName[name]; ok && !strings.Contains(name, ":") {
		return []match{{name: name}}
	}
	if ts := ix.aliasMatches(name); len(ts) > 0 {
		for _, t := range ts {
			ms = append(ms, match{name: t.module, viaAlias: true})
		}
		return ms
	}
	if ix.builtin[name] {
		return []match{{name: name}}
	}
	for _, mod := range ix.builtinAliases[name] {
		ms = append(ms, match{name: mod, viaAlias: true})
	}
	return ms
}

// aliasMatches returns the alias entries whose pattern matches name, in
// priority order.
func (ix *Index) aliasMatches(name string) []aliasTarget {
	ts := append([]aliasTarget(nil), ix.aliasExact[name]...)
	for _, l := range ix.aliasWildLens {
		if l > len(name) {
			continue
		}
		for _, t := range ix.aliasWild[name[:l]] {
			if fnmatch(t.pattern, name) {
				ts = append(ts, t)
			}
		}
	}
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].priority < ts[j].priority })
	return ts
}

type softResult struct{ pre, post []match }

// softdepsOf returns the modules of the first softdep entry matching name;
// like modprobe, later entries for the same module are ignored.
func (ix *Index) softdepsOf(name string) *softResult {
	ix.mu.Lock()
	r, ok := ix.soft[name]
	ix.mu.Unlock()
	if ok {
		return r
	}
	r = &softResult{}
	for _, sd := range ix.softdeps {
		if !fnmatch(sd.pattern, name) {
			continue
		}
		for _, n := range sd.pre {
			r.pre = append(r.pre, ix.find(Normalize(n))...)
		}
		for _, n := range sd.post {
			if !ix.ignorePost {
				r.post = append(r.post, ix.find(Normalize(n))...)
			}
		}
		break
	}
	ix.mu.Lock()
	ix.soft[name] = r
	ix.mu.Unlock()
	return r
}

// walker builds one probe list the way libkmod does: a module's
// dependencies (each with its own softdeps around it), then the module.
// Only modules reached as a root or a softdep are marked visited, so a
// dependency can appear twice; Resolve keeps the first.
type walker struct {
	ix      *Index
	visited map[string]bool
	order   []string
}

func (w *walker) probe(name string) {
	if w.visited[name] {
		return
	}
	w.visited[name] = true
	if i, ok := w.ix.byName[name]; ok {
		for _, d := range w.ix.mods[i].deps {
			w.withSoftdeps(w.ix.mods[d].name)
		}
	}
	w.withSoftdeps(name)
}

func (w *walker) withSoftdeps(name string) {
	sd := w.ix.softdepsOf(name)
	for _, m := range sd.pre {
		w.probe(m.name)
	}
	w.order = append(w.order, name)
	for _, m := range sd.post {
		w.probe(m.name)
	}
}
