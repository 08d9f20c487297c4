package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// assignment is one KEY=value read from a shell-syntax config file.
type assignment struct {
	Key   string
	Value string
	Line  int
}

// shellVars is the variable scope a config file is evaluated in: what the file
// assigned so far on top of the process environment, like `source` in bash.
type shellVars struct {
	vars map[string]string
}

func newShellVars(environ []string) *shellVars {
	s := &shellVars{vars: make(map[string]string, len(environ))}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			s.vars[k] = v
		}
	}
	return s
}

func (s *shellVars) Get(name string) expand.Variable {
	v, ok := s.vars[name]
	if !ok {
		return expand.Variable{}
	}
	return expand.Variable{Set: true, Exported: true, Kind: expand.String, Str: v}
}

func (s *shellVars) Each(fn func(string, expand.Variable) bool) {
	for name := range s.vars {
		if !fn(name, s.Get(name)) {
			return
		}
	}
}

// parseShell reads a bash file made of variable assignments (`KEY=value`,
// `export KEY=value`, `readonly KEY=value`, quotes, `${VAR}` and `${VAR:-x}`
// expansion, comments) with a real shell parser, and evaluates it in order.
// override(key) returns a value that replaces the file's assignment (an
// environment variable of the same name); later lines see the overridden
// value, as they would in a shell that had it set. Anything that is not a
// plain assignment (commands, command substitution, arrays, conditionals) is
// an error naming file and line: a config file must not run code.
//
// A line that assigns a secret (see isSecretKey) never shows its value in
// an error: whatever is wrong on it, the message names file, line and key
// only.
func parseShell(name string, src []byte, scope *shellVars, override func(string) (string, bool)) ([]assignment, error) {
	secrets := secretLines(src)
	f, err := syntax.NewParser(syntax.KeepComments(false), syntax.Variant(syntax.LangBash)).Parse(bytes.NewReader(src), name)
	if err != nil {
		var perr syntax.ParseError
		if errors.As(err, &perr) {
			if key, ok := secrets[int(perr.Pos.Line())]; ok {
				return nil, secretError(name, int(perr.Pos.Line()), key)
			}
			return nil, scrubSecrets(fmt.Errorf("%s:%d: %s", name, perr.Pos.Line(), perr.Text), src, secrets)
		}
		return nil, scrubSecrets(err, src, secrets)
	}
	cfg := &expand.Config{Env: scope, NoUnset: true, ProcSubst: noProcSubst}
	var out []assignment
	var errs []error
	for _, stmt := range f.Stmts {
		line := int(stmt.Pos().Line())
		assigns, err := stmtAssigns(stmt)
		if err == nil {
			err = multiWordSecret(stmt)
		}
		if err != nil {
			if key, ok := secretIn(secrets, line, int(stmt.End().Line())); ok {
				errs = append(errs, secretError(name, line, key))
			} else {
				errs = append(errs, scrubSecrets(fmt.Errorf("%s:%d: %w", name, line, err), src, secrets))
			}
			continue
		}
		for _, a := range assigns {
			key := a.Name.Value
			line := int(a.Pos().Line())
			value := ""
			if a.Value != nil {
				value, err = expand.Literal(cfg, a.Value)
				if err != nil && isSecretKey(key) {
					errs = append(errs, secretError(name, line, key))
					continue
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("%s:%d: %s: %s", name, line, key, expandError(err)))
					continue
				}
			}
			if a.Append {
				value = scope.vars[key] + value
			}
			if v, ok := override(key); ok {
				value = v
			}
			scope.vars[key] = value
			out = append(out, assignment{Key: key, Value: value, Line: line})
		}
	}
	return out, errors.Join(errs...)
}

// stmtAssigns returns the assignments of a statement that is nothing but
// assignments, and an error for anything else.
func stmtAssigns(stmt *syntax.Stmt) ([]*syntax.Assign, error) {
	if stmt.Negated || stmt.Background || len(stmt.Redirs) > 0 {
		return nil, errors.New("only variable assignments are allowed (no redirections, & or !)")
	}
	var assigns []*syntax.Assign
	switch cmd := stmt.Cmd.(type) {
	case *syntax.CallExpr:
		if len(cmd.Args) > 0 {
			return nil, fmt.Errorf("only variable assignments are allowed, found the command %q", wordText(cmd.Args[0]))
		}
		assigns = cmd.Assigns
	case *syntax.DeclClause:
		switch cmd.Variant.Value {
		case "export", "readonly", "declare", "typeset":
		default:
			return nil, fmt.Errorf("%q is not allowed in a config file", cmd.Variant.Value)
		}
		for _, a := range cmd.Args {
			if a.Naked && a.Name == nil {
				return nil, fmt.Errorf("%s options are not supported", cmd.Variant.Value)
			}
			if a.Naked {
				continue // `export KEY`: marks an existing variable, assigns nothing
			}
			assigns = append(assigns, a)
		}
	default:
		return nil, fmt.Errorf("only variable assignments are allowed, found a %s", commandKind(stmt.Cmd))
	}
	for _, a := range assigns {
		if a.Array != nil || a.Index != nil {
			return nil, fmt.Errorf("%s: arrays are not supported", a.Name.Value)
		}
	}
	return assigns, nil
}

// noProcSubst refuses <(cmd); leaving expand.Config.ProcSubst nil makes
// expand panic (found by FuzzBuildConf).
func noProcSubst(*syntax.ProcSubst) (string, error) {
	return "", errors.New("process substitution is not supported in a config file")
}

func expandError(err error) string {
	var cmd expand.UnexpectedCommandError
	if errors.As(err, &cmd) {
		return "command substitution is not supported in a config file: write the value itself"
	}
	var unset expand.UnsetParameterError
	if errors.As(err, &unset) {
		if unset.Message != "" && !strings.Contains(unset.Message, "unbound variable") {
			return fmt.Sprintf("${%s}: %s", unset.Node.Param.Value, unset.Message)
		}
		return fmt.Sprintf("${%s} is not set (define it on an earlier line or in the environment)", unset.Node.Param.Value)
	}
	return err.Error()
}

func wordText(w *syntax.Word) string {
	var b strings.Builder
	syntax.NewPrinter().Print(&b, w)
	return b.String()
}

func commandKind(c syntax.Command) string {
	switch c.(type) {
	case *syntax.IfClause:
		return "conditional (if)"
	case *syntax.FuncDecl:
		return "function definition"
	case *syntax.BinaryCmd:
		return "command list (&&, || or |)"
	case *syntax.ForClause, *syntax.WhileClause:
		return "loop"
	default:
		return fmt.Sprintf("%T", c)
	}
}

// secretKeys are the keys tagged secret in the config structs.
var secretKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range []any{Build{}, RFS{}} {
		for _, k := range keysOf(v) {
			if k.Secret {
				m[k.Name] = true
			}
		}
	}
	return m
}()

// secretWords mark a key as a secret by its name, for keys the structs do
// not know (a typo, or a variable other keys are built from).
var secretWords = regexp.MustCompile(`SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|ACCESS_KEY|PRIVATE_KEY`)

// isSecretKey reports whether a key's value must never be shown.
func isSecretKey(key string) bool {
	return secretKeys[key] || secretWords.MatchString(strings.ToUpper(key))
}

// assignLine matches the start of a line that assigns a variable, so that
// secret lines are known even when the file does not parse.
var assignLine = regexp.MustCompile(`^\s*(?:(?:export|readonly|declare|typeset|local)\s+(?:-\w+\s+)*)?([A-Za-z_][A-Za-z0-9_]*)\+?=`)

// secretLines maps the (1-based) lines that assign a secret to its key.
func secretLines(src []byte) map[int]string {
	out := map[int]string{}
	for i, l := range strings.Split(string(src), "\n") {
		if m := assignLine.FindStringSubmatch(l); m != nil && isSecretKey(m[1]) {
			out[i+1] = m[1]
		}
	}
	return out
}

// secretIn returns the key of a secret line in [from, to].
func secretIn(secrets map[int]string, from, to int) (string, bool) {
	for l := from; l <= to; l++ {
		if key, ok := secrets[l]; ok {
			return key, true
		}
	}
	return "", false
}

// secretError is the one message for any problem on a secret's line.
func secretError(name string, line int, key string) error {
	return fmt.Errorf("%s:%d: %s: the value is not one plain shell word (a space, ';', '&', '$', a quote or a bracket in it?): "+
		"put it in single quotes; it is not shown because %s is a secret", name, line, key, key)
}

// multiWordSecret refuses `export SECRET=one two`, which bash reads as
// SECRET=one plus a bare `two`: the secret would silently lose its end.
func multiWordSecret(stmt *syntax.Stmt) error {
	decl, ok := stmt.Cmd.(*syntax.DeclClause)
	if !ok {
		return nil
	}
	secret := false
	for _, a := range decl.Args {
		if a.Naked && secret {
			return errors.New("a bare word follows a secret")
		}
		if !a.Naked && a.Name != nil && isSecretKey(a.Name.Value) {
			secret = true
		}
	}
	return nil
}

// scrubSecrets hides, in an error about another line, any word of four or
// more characters that appears in the value of a secret line (a quote
// opened on a secret line can make a parser quote what follows).
func scrubSecrets(err error, src []byte, secrets map[int]string) error {
	if err == nil || len(secrets) == 0 {
		return err
	}
	msg := err.Error()
	lines := strings.Split(string(src), "\n")
	for l := range secrets {
		_, value, _ := strings.Cut(lines[l-1], "=")
		for _, w := range strings.FieldsFunc(value, func(r rune) bool { return strings.ContainsRune(" \t;&|()<>'\"`$", r) }) {
			if len(w) >= 4 {
				msg = strings.ReplaceAll(msg, w, "***")
			}
		}
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}
