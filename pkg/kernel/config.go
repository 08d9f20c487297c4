package kernel

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Config is a parsed kernel .config (or a fragment such as
// config/kernel.config): CONFIG_ symbols and their values as written, with
// quotes kept for strings. "# CONFIG_X is not set" is recorded as "n".
type Config struct {
	values map[string]string
	order  []string
}

// ReadConfig parses a .config file. Lines that are neither assignments nor
// "is not set" comments are ignored; a malformed assignment is an error
// naming the file and line.
func ReadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read kernel config: %w", err)
	}
	defer f.Close()
	c := &Config{values: map[string]string{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "# "); ok {
			if sym, ok := strings.CutSuffix(name, " is not set"); ok && strings.HasPrefix(sym, "CONFIG_") {
				c.Set(sym, "n")
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		sym, val, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(sym, "CONFIG_") || strings.ContainsAny(sym, " \t") {
			return nil, fmt.Errorf("%s:%d: not a CONFIG_NAME=value line: %q", path, n, line)
		}
		c.Set(sym, val)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// Get returns a symbol's value ("n" when unset or absent) and whether the
// file mentions it.
func (c *Config) Get(sym string) (string, bool) {
	v, ok := c.values[sym]
	if !ok {
		return "n", false
	}
	return v, true
}

// String returns a string symbol's value without its quotes.
func (c *Config) String(sym string) string {
	v, _ := c.Get(sym)
	if v == "n" {
		return ""
	}
	return unquote(v)
}

// Set assigns a symbol; "n" writes it as "is not set".
func (c *Config) Set(sym, val string) {
	if _, ok := c.values[sym]; !ok {
		c.order = append(c.order, sym)
	}
	c.values[sym] = val
}

func (c *Config) clone() *Config {
	n := &Config{values: make(map[string]string, len(c.values)), order: append([]string(nil), c.order...)}
	for k, v := range c.values {
		n.values[k] = v
	}
	return n
}

// Bytes renders the config in .config syntax, in the order symbols were
// first set.
func (c *Config) Bytes() []byte {
	var b strings.Builder
	for _, s := range c.order {
		if v := c.values[s]; v == "n" {
			fmt.Fprintf(&b, "# %s is not set\n", s)
		} else {
			fmt.Fprintf(&b, "%s=%s\n", s, v)
		}
	}
	return []byte(b.String())
}

// Dropped is a symbol our config sets to y or m that the kernel's
// olddefconfig did not keep (a missing dependency, a renamed or removed
// option).
type Dropped struct {
	Symbol string
	Want   string
	Got    string // "n" when unset
}

func (d Dropped) String() string { return fmt.Sprintf("%s=%s (now %s)", d.Symbol, d.Want, d.Got) }

// Missing compares want (our config) with got (the .config after
// olddefconfig) and returns every y/m symbol of want whose value changed,
// sorted by name.
func Missing(want, got *Config) []Dropped {
	var out []Dropped
	for _, s := range want.order {
		w := want.values[s]
		if w != "y" && w != "m" {
			continue
		}
		if g, _ := got.Get(s); g != w {
			out = append(out, Dropped{Symbol: s, Want: w, Got: g})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Symbol < out[j].Symbol })
	return out
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		v = strings.ReplaceAll(v, `\"`, `"`)
		v = strings.ReplaceAll(v, `\\`, `\`)
	}
	return v
}

func quote(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
}
