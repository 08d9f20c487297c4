// Package zinit reads and checks zinit service units the way zinit itself
// loads them, so a unit that zinit would skip, never start or block forever
// on is caught at build time, and installs them into a rootfs.
package zinit

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Unit is one service file as zinit understands it, with zinit's defaults
// filled in.
type Unit struct {
	Name string // file stem: network.yaml -> network
	File string // path it was read from

	Exec string
	Argv []string // Exec split as zinit splits it
	Test string
	// TestArgv is Test split; nil when there is no test.
	TestArgv        []string
	Oneshot         bool
	ShutdownTimeout uint64 // seconds
	After           []string
	SignalStop      string
	Log             string
	Env             map[string]string
	Dir             string
}

// Defaults zinit applies to keys a unit leaves out.
const (
	DefaultShutdownTimeout = 10
	DefaultSignalStop      = "sigterm"
	DefaultLog             = "ring"
)

// knownKeys are the top-level keys of zinit's Service struct.
func knownKeys() []string {
	return []string{"exec", "test", "oneshot", "shutdown_timeout", "after", "signal", "log", "env", "dir"}
}

// keyHints explain keys people copy from other init systems (or from the
// original zosbuilder's units) that zinit silently ignores.
func keyHints(key string) string {
	switch key {
	case "restart":
		return "zinit always restarts a non-oneshot service 2 s after it exits"
	case "name":
		return "the service name is the file name without .yaml"
	case "depends", "requires", "wants", "before":
		return "zinit only knows `after`"
	}
	return ""
}

// parser collects the problems found in one file.
type parser struct {
	file     string
	errs     []*Problem
	warnings []*Problem
}

func (p *parser) errorf(n *yaml.Node, key string, sentinel error, format string, args ...any) {
	p.errs = append(p.errs, &Problem{File: p.file, Line: line(n), Key: key, Msg: fmt.Sprintf(format, args...), Err: sentinel})
}

func (p *parser) warnf(n *yaml.Node, key string, format string, args ...any) {
	p.warnings = append(p.warnings, &Problem{File: p.file, Line: line(n), Key: key, Msg: fmt.Sprintf(format, args...), Err: ErrIgnored})
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// Parse reads one unit. The name is the stem of file. It returns the unit
// (nil when the file is not YAML at all), the warnings (keys zinit ignores,
// likely mistakes that still load), and an error joining every problem that
// makes zinit reject or mis-run the unit.
func Parse(file string, data []byte) (*Unit, []*Problem, error) {
	p := &parser{file: file}
	u := p.parse(data)
	return u, p.warnings, joinProblems(p.errs)
}

func (p *parser) parse(data []byte) *Unit {
	u := &Unit{
		Name:            stem(filepath.Base(p.file)),
		File:            p.file,
		ShutdownTimeout: DefaultShutdownTimeout,
		SignalStop:      DefaultSignalStop,
		Log:             DefaultLog,
		Env:             map[string]string{},
	}
	doc := p.document(data)
	if doc == nil {
		return nil
	}
	if doc.Kind != yaml.MappingNode {
		p.errorf(doc, "", ErrInvalid, "a unit must be a YAML mapping of keys (exec: ...), not a %s", kindName(doc))
		return nil
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], deref(doc.Content[i+1])
		key := k.Value
		if seen[key] {
			p.errorf(k, key, ErrInvalid, "duplicate key (zinit rejects the file)")
			continue
		}
		seen[key] = true
		p.field(u, k, v)
	}
	if u.Exec == "" && !seen["exec"] {
		p.errorf(doc, "exec", ErrInvalid, "missing exec directive: every unit needs the command to run")
	}
	if u.Oneshot && u.Test != "" {
		p.warnf(doc, "test", "a oneshot service is never tested; zinit ignores test here")
	}
	return u
}

// document decodes the single YAML document of a unit file.
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(nil, "", ErrInvalid, "empty file: a unit needs at least exec")
		} else {
			p.errs = append(p.errs, &Problem{File: p.file, Line: yamlErrorLine(err), Msg: "YAML: " + err.Error(), Err: ErrInvalid})
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(&extra, "", ErrInvalid, "more than one YAML document; zinit reads a unit as one document")
	} else if !errors.Is(err, io.EOF) {
		p.errs = append(p.errs, &Problem{File: p.file, Line: yamlErrorLine(err), Msg: "YAML: " + err.Error(), Err: ErrInvalid})
	}
	if len(doc.Content) == 0 {
		p.errorf(&doc, "", ErrInvalid, "empty document: a unit needs at least exec")
		return nil
	}
	return deref(doc.Content[0])
}

func (p *parser) field(u *Unit, k, v *yaml.Node) {
	key := k.Value
	switch key {
	case "exec":
		u.Exec, u.Argv = p.command(v, key, true)
	case "test":
		u.Test, u.TestArgv = p.command(v, key, false)
	case "dir":
		u.Dir, _ = p.str(v, key)
	case "oneshot":
		u.Oneshot = p.boolean(v, key)
	case "shutdown_timeout":
		if n, ok := p.uint(v, key); ok {
			u.ShutdownTimeout = n
		}
	case "after":
		u.After = p.after(v)
	case "signal":
		if s := p.signal(v); s != "" {
			u.SignalStop = s
		}
	case "log":
		if s := p.log(v); s != "" {
			u.Log = s
		}
	case "env":
		p.env(v, u.Env)
	default:
		msg := fmt.Sprintf("unknown key %q is ignored by zinit", key)
		if near := closest(key, knownKeys()); near != "" {
			msg += fmt.Sprintf("; did you mean %q?", near)
		} else if hint := keyHints(key); hint != "" {
			msg += "; " + hint
		}
		p.warnf(k, key, "%s", msg)
	}
}

// str reads a string value. zinit's YAML library turns any scalar into its
// text, so numbers are accepted; an explicit null (~) would become a literal
// "~" there, which is never what was meant.
func (p *parser) str(v *yaml.Node, key string) (string, bool) {
	if v.Kind != yaml.ScalarNode {
		p.errorf(v, key, ErrInvalid, "must be a string, not a %s", kindName(v))
		return "", false
	}
	if v.ShortTag() == "!!null" && v.Value != "" {
		p.errorf(v, key, ErrInvalid, "is null (%s); give a value or remove the key", v.Value)
		return "", false
	}
	return v.Value, true
}

func (p *parser) command(v *yaml.Node, key string, required bool) (string, []string) {
	s, ok := p.str(v, key)
	if !ok {
		return "", nil
	}
	if s == "" {
		if required {
			p.errorf(v, key, ErrInvalid, "missing exec directive: the command is empty")
		}
		return "", nil
	}
	argv, err := Split(s)
	switch {
	case err != nil:
		p.errorf(v, key, ErrInvalid, "%s in %q: zinit cannot split the command line", err.Error(), s)
		return s, nil
	case len(argv) == 0:
		p.errorf(v, key, ErrInvalid, "%q splits into no words", s)
		return s, nil
	case argv[0] == "":
		p.errorf(v, key, ErrInvalid, "%q: the program name is empty", s)
		return s, nil
	}
	p.shellWarnings(v, key, argv)
	return s, argv
}

// shellWarnings flags shell syntax in a command that zinit runs without a
// shell, where it would be passed to the program as plain arguments.
func (p *parser) shellWarnings(v *yaml.Node, key string, argv []string) {
	for _, w := range argv[1:] {
		switch w {
		case "&&", "||", "|", ";", "&", ">", ">>", "<", "2>", "2>&1", ">/dev/null":
			p.warnf(v, key, "%q is passed as a plain argument: zinit runs commands without a shell; use sh -c '...'", w)
			return
		}
	}
	if strings.ContainsAny(argv[0], "$`*?") {
		p.warnf(v, key, "program name %q is not expanded: zinit runs commands without a shell", argv[0])
	}
}

func (p *parser) boolean(v *yaml.Node, key string) bool {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
		switch v.Value {
		case "true", "True", "TRUE":
			return true
		case "false", "False", "FALSE":
			return false
		}
	}
	p.errorf(v, key, ErrInvalid, "must be true or false, not %s", describe(v))
	return false
}

func (p *parser) uint(v *yaml.Node, key string) (uint64, bool) {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" {
		if n, err := strconv.ParseUint(v.Value, 10, 64); err == nil {
			return n, true
		}
	}
	p.errorf(v, key, ErrInvalid, "must be a non-negative whole number of seconds, not %s", describe(v))
	return 0, false
}

func (p *parser) after(v *yaml.Node) []string {
	if v.Kind != yaml.SequenceNode {
		hint := ""
		if v.Kind == yaml.ScalarNode && v.Value != "" {
			hint = fmt.Sprintf(" (write after: [%s])", v.Value)
		}
		p.errorf(v, "after", ErrInvalid, "must be a YAML sequence of service names, not %s%s", describe(v), hint)
		return nil
	}
	var names []string
	for i, item := range v.Content {
		item = deref(item)
		key := fmt.Sprintf("after[%d]", i)
		if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" || item.Value == "" {
			p.errorf(item, key, ErrInvalid, "must be a service name, not %s", describe(item))
			continue
		}
		if slices.Contains(names, item.Value) {
			p.warnf(item, key, "%q is listed twice", item.Value)
			continue
		}
		names = append(names, item.Value)
	}
	return names
}

func (p *parser) signal(v *yaml.Node) string {
	if v.Kind != yaml.MappingNode {
		p.errorf(v, "signal", ErrInvalid, "must be a mapping like {stop: SIGTERM}, not %s", describe(v))
		return ""
	}
	stop := ""
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], deref(v.Content[i+1])
		if k.Value != "stop" {
			msg := fmt.Sprintf("unknown key %q is ignored by zinit", k.Value)
			if closest(k.Value, []string{"stop"}) != "" {
				msg += `; did you mean "stop"?`
			}
			p.warnf(k, "signal."+k.Value, "%s", msg)
			continue
		}
		s, ok := p.str(val, "signal.stop")
		if !ok {
			continue
		}
		if !ValidSignal(s) {
			msg := fmt.Sprintf("%q is not a signal name zinit accepts", s)
			if ValidSignal("SIG" + s) {
				msg += fmt.Sprintf(" (it needs the SIG prefix: %s)", strings.ToUpper("SIG"+s))
			}
			p.errorf(val, "signal.stop", ErrInvalid, "%s", msg)
			continue
		}
		stop = s
	}
	return stop
}

func (p *parser) log(v *yaml.Node) string {
	if v.Kind == yaml.ScalarNode {
		switch v.Value {
		case "none", "ring", "stdout":
			if v.ShortTag() == "!!str" {
				return v.Value
			}
		}
	}
	msg := fmt.Sprintf("must be none, ring or stdout, not %s", describe(v))
	switch {
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
		msg += " (zinit's value for no logging is none)"
	case v.Kind == yaml.ScalarNode && slices.Contains([]string{"none", "ring", "stdout"}, strings.ToLower(v.Value)):
		msg += " (lowercase only)"
	}
	p.errorf(v, "log", ErrInvalid, "%s", msg)
	return ""
}

func (p *parser) env(v *yaml.Node, env map[string]string) {
	if v.Kind != yaml.MappingNode {
		p.errorf(v, "env", ErrInvalid, "must be a mapping of NAME: value, not %s", describe(v))
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], deref(v.Content[i+1])
		key := "env." + k.Value
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			p.errorf(k, "env", ErrInvalid, "variable names must be strings")
			continue
		}
		if _, dup := env[k.Value]; dup {
			p.warnf(k, key, "set twice; the last value wins")
		}
		if val.Kind != yaml.ScalarNode {
			p.errorf(val, key, ErrInvalid, "must be a string, not a %s", kindName(val))
			continue
		}
		if val.ShortTag() == "!!null" {
			env[k.Value] = ""
			continue
		}
		env[k.Value] = val.Value
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.ScalarNode:
		return "scalar"
	}
	return "YAML node"
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		if n.ShortTag() == "!!null" {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "a " + kindName(n)
}

// yamlErrorLine digs the line number out of a yaml.v3 error ("yaml: line 3: ...").
func yamlErrorLine(err error) int {
	var n int
	if _, e := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &n); e == nil {
		return n
	}
	return 0
}

// stem is Rust's Path::file_stem: the name without its last extension; a
// name whose only dot is the leading one has no extension.
func stem(name string) string {
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		return name[:i]
	}
	return name
}

// extension is Rust's Path::extension, the counterpart of stem.
func extension(name string) string {
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		return name[i+1:]
	}
	return ""
}
