package config

import (
	"bytes"
	"errors"
	"fmt"
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
func parseShell(name string, src []byte, scope *shellVars, override func(string) (string, bool)) ([]assignment, error) {
	f, err := syntax.NewParser(syntax.KeepComments(false), syntax.Variant(syntax.LangBash)).Parse(bytes.NewReader(src), name)
	if err != nil {
		var perr syntax.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%s:%d: %s", name, perr.Pos.Line(), perr.Text)
		}
		return nil, err
	}
	cfg := &expand.Config{Env: scope, NoUnset: true, ProcSubst: noProcSubst}
	var out []assignment
	var errs []error
	for _, stmt := range f.Stmts {
		line := int(stmt.Pos().Line())
		assigns, err := stmtAssigns(stmt)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, line, err))
			continue
		}
		for _, a := range assigns {
			key := a.Name.Value
			line := int(a.Pos().Line())
			value := ""
			if a.Value != nil {
				value, err = expand.Literal(cfg, a.Value)
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
