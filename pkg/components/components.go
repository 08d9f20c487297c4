// Package components builds the Zero-OS components listed in sources.conf
// (zinit, rfs, mycelium, corex, ...): it fetches git checkouts without ever
// discarding local changes, downloads pinned release binaries, builds with
// cargo (static musl), go (CGO off), make or a script, verifies that each
// result is a static x86-64 executable, and installs it into the image.
package components

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/download"
)

// Type is how a component's source is obtained.
type Type string

// Component types.
const (
	Git     Type = "git"     // SOURCE is a clone URL, VERSION a tag, branch or commit
	Release Type = "release" // SOURCE is a URL of a binary or tarball, a checksum required
	Local   Type = "local"   // SOURCE is a path, relative to the project root
)

// Build kinds.
const (
	CargoMusl = "cargo-musl"
	Go        = "go"
	Make      = "make"
	Script    = "script"
	None      = "none"
)

// RustTarget is the target cargo-musl builds for.
const RustTarget = "x86_64-unknown-linux-musl"

// BuildSpec is the parsed BUILD field: KIND[:ITEM[,ITEM...]], where a bare
// ITEM is the kind's argument and KEY=VALUE items are options.
type BuildSpec struct {
	Kind string
	// Arg is the cargo package (-p), the go package (default "."), the make
	// target, or the script path (relative to the project root).
	Arg string
	// Dir is the subdirectory of the source to build in (dir=).
	Dir string
	// Features are cargo features (features=a+b).
	Features []string
	// Bin is the built binary's path relative to Dir (make, none) or its
	// name in cargo's release directory (cargo-musl; default: the base name
	// of INSTALL_PATH) (bin=).
	Bin string
}

// String gives the BUILD field back.
func (b BuildSpec) String() string {
	var items []string
	if b.Arg != "" {
		items = append(items, b.Arg)
	}
	if b.Dir != "" {
		items = append(items, "dir="+b.Dir)
	}
	if len(b.Features) > 0 {
		items = append(items, "features="+strings.Join(b.Features, "+"))
	}
	if b.Bin != "" {
		items = append(items, "bin="+b.Bin)
	}
	if len(items) == 0 {
		return b.Kind
	}
	return b.Kind + ":" + strings.Join(items, ",")
}

// Component is one line of sources.conf.
type Component struct {
	Type   Type
	Name   string
	Source string
	// Version is the git tag, branch or commit; informational for release
	// and local ("-" in the file is stored as "").
	Version string
	Build   BuildSpec
	// InstallPath is the absolute path of the binary in the image.
	InstallPath string
	// Checksum pins a release download: a sha256 (lowercase hex), or
	// "md5:<hex>" for an upstream that publishes nothing stronger (see
	// download.ParseChecksum).
	Checksum string
	// Dynamic allows a dynamically linked binary (the `dynamic` flag).
	Dynamic bool
	// File and Line locate the entry, for messages.
	File string
	Line int
}

// Where is "file:line" of the entry.
func (c Component) Where() string { return fmt.Sprintf("%s:%d", c.File, c.Line) }

var (
	nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// Items of BUILD must not smuggle options or shell syntax into the
	// commands they become.
	itemRe = regexp.MustCompile(`^[A-Za-z0-9_./+@-]+$`)
)

// Format is the sources.conf line format, and FormatExample a line in it,
// which every parse error ends with.
const (
	Format        = "TYPE NAME SOURCE VERSION BUILD INSTALL_PATH [SHA256] [dynamic]"
	FormatExample = "git zinit https://github.com/threefoldtech/zinit v0.2.28 cargo-musl:zinit /sbin/zinit"
)

// Parse reads sources.conf: one component per line, whitespace-separated
// fields `TYPE NAME SOURCE VERSION BUILD INSTALL_PATH [SHA256] [dynamic]`,
// `#` starting a comment. filename is used in messages ("file:line: ...");
// every bad line is reported at once, followed by the expected format and
// an example line.
func Parse(r io.Reader, filename string) ([]Component, error) {
	var comps []Component
	var errs []error
	badLine := false
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(stripComment(sc.Text()))
		if len(fields) == 0 {
			continue
		}
		c, err := parseLine(fields)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", filename, n, err))
			badLine = true
			continue
		}
		if prev, dup := seen[c.Name]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: component %s already defined on line %d", filename, n, c.Name, prev))
			continue
		}
		seen[c.Name] = n
		c.File, c.Line = filename, n
		comps = append(comps, c)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read %s: %w", filename, err))
	}
	if badLine {
		errs = append(errs, fmt.Errorf("%s: each line is %s, separated by blanks (the README's sources.conf section explains the fields), e.g.\n  %s",
			filename, Format, FormatExample))
	}
	return comps, errors.Join(errs...)
}

// stripComment drops a '#' comment that starts a line or follows a blank,
// so a '#' inside a URL fragment is kept.
func stripComment(line string) string {
	for i, r := range line {
		if r == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

func parseLine(f []string) (Component, error) {
	if len(f) < 6 || len(f) > 8 {
		if len(f) < 6 && looksSeparated(f) {
			return Component{}, fmt.Errorf("got %d fields, in the original's colon- or pipe-separated form, which is not read: "+
				"the fields are now separated by blanks", len(f))
		}
		return Component{}, fmt.Errorf("want %s, got %d fields", Format, len(f))
	}
	c := Component{Type: Type(f[0]), Name: f[1], Source: f[2], Version: f[3], InstallPath: f[5]}
	if c.Version == "-" {
		c.Version = ""
	}
	for _, extra := range f[6:] {
		switch {
		case extra == "dynamic" && !c.Dynamic:
			c.Dynamic = true
		case c.Checksum == "" && isChecksum(extra):
			sum, _ := download.ParseChecksum(extra)
			c.Checksum = sum.String()
		default:
			return Component{}, fmt.Errorf("unexpected field %q (want a sha256, md5:<hex> or the flag dynamic)", extra)
		}
	}
	if !nameRe.MatchString(c.Name) {
		return Component{}, fmt.Errorf("invalid component name %q", c.Name)
	}
	b, err := parseBuild(f[4])
	if err != nil {
		return Component{}, fmt.Errorf("%s: %w", c.Name, err)
	}
	c.Build = b
	if err := c.check(); err != nil {
		return Component{}, fmt.Errorf("%s: %w", c.Name, err)
	}
	return c, nil
}

// looksSeparated spots a line of the original's sources.conf, whose fields
// were joined by ':' or '|' (git:zinit:https://...:v0.2.28:build_zinit).
func looksSeparated(f []string) bool {
	line := strings.Join(f, " ")
	return strings.Contains(line, "|") || strings.Count(strings.ReplaceAll(line, "://", ""), ":") >= 3
}

func (c Component) check() error {
	p := c.InstallPath
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" || strings.Contains(p, "/../") {
		return fmt.Errorf("INSTALL_PATH %q: want a clean absolute path such as /usr/bin/%s", p, c.Name)
	}
	switch c.Type {
	case Git:
		if c.Version == "" {
			return errors.New("git component needs a VERSION (tag, branch or commit)")
		}
		if strings.HasPrefix(c.Version, "-") || strings.HasPrefix(c.Source, "-") {
			return errors.New("SOURCE and VERSION must not start with '-'")
		}
		if c.Build.Kind == None && c.Build.Bin == "" {
			return errors.New("BUILD none for a git component needs bin=PATH")
		}
		if c.Checksum != "" {
			return errors.New("a checksum pins release downloads only")
		}
	case Release:
		u, err := url.Parse(c.Source)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
			return fmt.Errorf("release SOURCE must be an http, https or file URL")
		}
		if c.Checksum == "" {
			return errors.New("release component needs a SHA256 (7th field; md5:<hex> when upstream publishes only an MD5)")
		}
		if c.Build.Kind != None {
			return fmt.Errorf("release component is prebuilt: BUILD must be none, got %s", c.Build.Kind)
		}
	case Local:
		if c.Checksum != "" {
			return errors.New("a checksum pins release downloads only")
		}
	default:
		return fmt.Errorf("unknown TYPE %q (want git, release or local)", c.Type)
	}
	return nil
}

// isChecksum tells a checksum field from a misplaced one: a 64-digit hex,
// or sha256:/md5: followed by the right number of hex digits.
func isChecksum(s string) bool {
	if !strings.Contains(s, ":") && len(s) != 64 {
		return false
	}
	_, err := download.ParseChecksum(s)
	return err == nil
}

func parseBuild(s string) (BuildSpec, error) {
	kind, rest, _ := strings.Cut(s, ":")
	b := BuildSpec{Kind: kind}
	if rest != "" {
		for _, item := range strings.Split(rest, ",") {
			if !itemRe.MatchString(item) && !strings.Contains(item, "=") || strings.HasPrefix(item, "-") {
				return BuildSpec{}, fmt.Errorf("BUILD %q: invalid item %q", s, item)
			}
			key, val, isOpt := strings.Cut(item, "=")
			if isOpt && !itemRe.MatchString(val) {
				return BuildSpec{}, fmt.Errorf("BUILD %q: invalid value in %q", s, item)
			}
			switch {
			case !isOpt && b.Arg == "":
				b.Arg = item
			case key == "dir":
				b.Dir = val
			case key == "features" && kind == CargoMusl:
				b.Features = strings.Split(val, "+")
			case key == "bin":
				b.Bin = val
			default:
				return BuildSpec{}, fmt.Errorf("BUILD %q: unexpected item %q", s, item)
			}
		}
	}
	for _, p := range []string{b.Dir, b.Bin} {
		if p != "" && (strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.HasPrefix(p, "..")) {
			return BuildSpec{}, fmt.Errorf("BUILD %q: %q must be a relative path inside the source", s, p)
		}
	}
	switch kind {
	case CargoMusl, Go:
	case Make:
		if b.Bin == "" {
			return BuildSpec{}, fmt.Errorf("BUILD %q: make needs bin=PATH of the built binary", s)
		}
	case Script:
		if b.Arg == "" {
			return BuildSpec{}, fmt.Errorf("BUILD %q: want script:<path>", s)
		}
	case None:
		if b.Arg != "" {
			return BuildSpec{}, fmt.Errorf("BUILD %q: none takes no argument (use bin=PATH)", s)
		}
	default:
		return BuildSpec{}, fmt.Errorf("unknown BUILD kind %q (want cargo-musl, go, make, script or none)", kind)
	}
	return b, nil
}
