package zinit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// ScriptDir is where helper scripts live inside the rootfs; units call them
// by this absolute path.
const ScriptDir = "/etc/zinit/init"

// Set is a directory of units as zinit would load it, plus its helper
// scripts (the init/ subdirectory); or several such directories laid over
// each other (LoadDirs).
type Set struct {
	// Dir is the first directory; Dirs all of them, in load order.
	Dir   string
	Dirs  []string
	Units []*Unit // sorted by name
	// Scripts are the helper scripts' file names (init/*.sh), sorted.
	Scripts []string
	// Warnings are findings that do not stop zinit: ignored keys and files.
	Warnings []*Problem

	scriptFiles map[string]string // script name -> the file it comes from
}

// ScriptFile is the file the helper script name comes from.
func (s *Set) ScriptFile(name string) string { return s.scriptFiles[name] }

// where names the set's directories in messages.
func (s *Set) where() string { return strings.Join(s.Dirs, " + ") }

// Unit returns the unit called name, or nil.
func (s *Set) Unit(name string) *Unit {
	i, ok := slices.BinarySearchFunc(s.Units, name, func(u *Unit, n string) int { return strings.Compare(u.Name, n) })
	if !ok {
		return nil
	}
	return s.Units[i]
}

// Names returns the unit names in order.
func (s *Set) Names() []string {
	names := make([]string, len(s.Units))
	for i, u := range s.Units {
		names[i] = u.Name
	}
	return names
}

// LoadDir reads and checks every unit in dir against zinit's loading rules
// and the whole set against each other: dependencies exist, the `after`
// graph has no cycle, referenced helper scripts exist and parse. The error
// joins every problem found (see Problems); the Set is returned even then.
func LoadDir(dir string) (*Set, error) { return LoadDirs(dir) }

// LoadDirs is LoadDir over several directories laid over each other: each
// adds its units and helper scripts, and replaces those of the same name
// from the directories before it. A build profile's zinit/ over the
// shipped one is the use: it adds units (the offline profile's self-test)
// or replaces shipped ones. The set is checked as a whole.
func LoadDirs(dirs ...string) (*Set, error) {
	if len(dirs) == 0 {
		return &Set{}, errors.New("read zinit units: no directory")
	}
	s := &Set{Dir: dirs[0], Dirs: dirs, scriptFiles: map[string]string{}}
	var errs []*Problem
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return s, fmt.Errorf("read zinit units: %w", err)
		}
		for _, e := range entries {
			errs = append(errs, s.loadEntry(dir, e)...)
		}
	}
	slices.SortFunc(s.Units, func(a, b *Unit) int { return strings.Compare(a.Name, b.Name) })
	errs = append(errs, s.checkAfter()...)
	errs = append(errs, s.checkCycles()...)
	errs = append(errs, s.checkScriptRefs()...)
	return s, joinProblems(errs)
}

// loadEntry applies zinit's load_dir filter to one directory entry: only
// regular files (symlinks are not followed) with extension exactly "yaml".
func (s *Set) loadEntry(dir string, e fs.DirEntry) []*Problem {
	path := filepath.Join(dir, e.Name())
	ext := extension(e.Name())
	switch {
	case e.IsDir() && e.Name() == "init":
		return s.loadScripts(path)
	case e.IsDir():
		s.warn(path, "directory is ignored by zinit")
		return nil
	case ext == "yml" || (strings.EqualFold(ext, "yaml") && ext != "yaml"):
		return []*Problem{{File: path, Msg: fmt.Sprintf("zinit only loads files ending in exactly .yaml; rename to %s.yaml", stem(e.Name())), Err: ErrNotLoaded}}
	case ext != "yaml":
		s.warn(path, "not a .yaml file; zinit ignores it")
		return nil
	case e.Type()&fs.ModeSymlink != 0:
		return []*Problem{{File: path, Msg: "is a symlink; zinit ignores symlinked units (it does not follow links): copy the file", Err: ErrNotLoaded}}
	case !e.Type().IsRegular():
		return []*Problem{{File: path, Msg: "is not a regular file; zinit ignores it", Err: ErrNotLoaded}}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return []*Problem{{File: path, Msg: err.Error(), Err: ErrInvalid}}
	}
	u, warnings, err := Parse(path, data)
	s.Warnings = append(s.Warnings, warnings...)
	if u != nil {
		// A later directory's unit replaces an earlier one of the same name.
		s.Units = slices.DeleteFunc(s.Units, func(o *Unit) bool { return o.Name == u.Name })
		s.Units = append(s.Units, u)
	}
	return Problems(err)
}

// loadScripts lists init/*.sh and parses each as a POSIX shell script, so a
// syntax error fails the build instead of the boot.
func (s *Set) loadScripts(dir string) []*Problem {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return []*Problem{{File: dir, Msg: err.Error(), Err: ErrInvalid}}
	}
	var errs []*Problem
	parser := syntax.NewParser(syntax.Variant(syntax.LangPOSIX))
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if !strings.HasSuffix(e.Name(), ".sh") {
			s.warn(path, "not a .sh file; it is not installed")
			continue
		}
		if !e.Type().IsRegular() {
			errs = append(errs, &Problem{File: path, Msg: "helper script is not a regular file", Err: ErrInvalid})
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &Problem{File: path, Msg: err.Error(), Err: ErrInvalid})
			continue
		}
		if _, err := parser.Parse(bytes.NewReader(data), path); err != nil {
			p := &Problem{File: path, Msg: "shell syntax: " + err.Error(), Err: ErrInvalid}
			var perr syntax.ParseError
			if errors.As(err, &perr) {
				p.Line, p.Msg = int(perr.Pos.Line()), "shell syntax: "+perr.Text
			}
			errs = append(errs, p)
			continue
		}
		if _, dup := s.scriptFiles[e.Name()]; !dup {
			s.Scripts = append(s.Scripts, e.Name())
		}
		s.scriptFiles[e.Name()] = path
	}
	slices.Sort(s.Scripts)
	return errs
}

func (s *Set) warn(path, msg string) {
	s.Warnings = append(s.Warnings, &Problem{File: path, Msg: msg, Err: ErrIgnored})
}

func (s *Set) checkAfter() []*Problem {
	var errs []*Problem
	names := s.Names()
	for _, u := range s.Units {
		for i, dep := range u.After {
			if s.Unit(dep) != nil {
				continue
			}
			msg := fmt.Sprintf("%q is not a unit in %s; zinit would keep %s blocked forever", dep, s.where(), u.Name)
			if near := closest(dep, names); near != "" {
				msg += fmt.Sprintf("; did you mean %q?", near)
			}
			errs = append(errs, &Problem{File: u.File, Key: fmt.Sprintf("after[%d]", i), Msg: msg, Err: ErrUnknownDependency})
		}
	}
	return errs
}

// checkCycles reports every distinct cycle of the `after` graph once, as a
// path starting at its alphabetically first unit.
func (s *Set) checkCycles() []*Problem {
	const (
		unseen = iota
		onStack
		done
	)
	state := map[string]int{}
	var stack []string
	seen := map[string]bool{}
	var errs []*Problem
	var visit func(string)
	visit = func(name string) {
		state[name] = onStack
		stack = append(stack, name)
		for _, dep := range s.Unit(name).After {
			if s.Unit(dep) == nil {
				continue
			}
			switch state[dep] {
			case unseen:
				visit(dep)
			case onStack:
				cycle := rotateToMin(stack[slices.Index(stack, dep):])
				key := strings.Join(cycle, " ")
				if !seen[key] {
					seen[key] = true
					u := s.Unit(cycle[0])
					path := strings.Join(append(cycle, cycle[0]), " -> ")
					errs = append(errs, &Problem{File: u.File, Key: "after", Msg: "dependency cycle " + path + ": zinit would never start these services", Err: ErrCycle})
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for _, u := range s.Units {
		if state[u.Name] == unseen {
			visit(u.Name)
		}
	}
	return errs
}

func rotateToMin(cycle []string) []string {
	i := slices.Index(cycle, slices.Min(cycle))
	return append(slices.Clone(cycle[i:]), cycle[:i]...)
}

// checkScriptRefs makes sure every word of exec/test that names a helper
// script under ScriptDir names one that is in the set.
func (s *Set) checkScriptRefs() []*Problem {
	var errs []*Problem
	for _, u := range s.Units {
		for key, argv := range map[string][]string{"exec": u.Argv, "test": u.TestArgv} {
			for _, w := range argv {
				name, ok := strings.CutPrefix(w, ScriptDir+"/")
				if !ok || slices.Contains(s.Scripts, name) {
					continue
				}
				errs = append(errs, &Problem{File: u.File, Key: key, Msg: fmt.Sprintf("%s is not among the helper scripts in %s", w, s.where()), Err: ErrInvalid})
			}
		}
	}
	slices.SortFunc(errs, func(a, b *Problem) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}
