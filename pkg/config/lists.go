package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Package is one line of packages.list: an apk dependency spec such as
// "busybox" or "busybox>=1.36".
type Package struct {
	Spec string
	File string // relative to the project root
	Line int
}

// Where is "file:line", for messages about this entry.
func (p Package) Where() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Module is one line of modules.conf: `stage1:<module>` or `stage2:<module>`,
// optionally followed by `:<firmware hint>` (accepted for compatibility with
// the original file and ignored: firmware.conf decides firmware).
type Module struct {
	Stage int // 1 or 2
	Name  string
	File  string
	Line  int
}

// Where is "file:line", for messages about this entry.
func (m Module) Where() string { return fmt.Sprintf("%s:%d", m.File, m.Line) }

// FirmwareEntry is one line of firmware.conf: the name of an Alpine
// linux-firmware subpackage (rtl_nic selects linux-firmware-rtl_nic and the
// repository's firmware/rtl_nic/ folder).
type FirmwareEntry struct {
	Name string
	File string
	Line int
}

// Where is "file:line", for messages about this entry.
func (f FirmwareEntry) Where() string { return fmt.Sprintf("%s:%d", f.File, f.Line) }

var (
	// apk's dependency syntax: name, optional operator and version
	// (=, <, >, <=, >=, ~, ~=, ><), or a name@tag pin.
	packageRe  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]*(@[A-Za-z0-9_-]+)?((=|<|>|<=|>=|~|~=|><)[A-Za-z0-9_.+-]+)?$`)
	moduleRe   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	firmwareRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)
)

// line is one meaningful line of a list file: comments (from '#') and
// surrounding blanks removed.
type line struct {
	text string
	num  int
}

// readLines returns the non-empty lines of a list file. A missing optional
// file gives no lines.
func readLines(path string, optional bool) ([]line, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		if optional && os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []line
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		if text = strings.TrimSpace(text); text != "" {
			out = append(out, line{text, n})
		}
	}
	return out, sc.Err()
}

// eachLine calls parse for every meaningful line of a list file (missing
// means empty) with the line, the file as messages name it and the line
// number, and returns all the errors it gave, each prefixed with file:line.
func (c *Config) eachLine(name string, parse func(text, file string, num int) error) error {
	path := c.Path(name)
	lines, err := readLines(path, true)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.rel(path), unwrapPathError(err))
	}
	var errs []error
	for _, l := range lines {
		if err := parse(l.text, c.rel(path), l.num); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", c.rel(path), l.num, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) loadPackages() error {
	return c.eachLine(PackagesFile, func(text, file string, num int) error {
		if f := strings.Fields(text); len(f) > 1 {
			return fmt.Errorf("one package per line, got %d: %s", len(f), text)
		}
		if !packageRe.MatchString(text) {
			return fmt.Errorf("want an apk package such as busybox or busybox>=1.36, got %q", text)
		}
		c.Packages = append(c.Packages, Package{Spec: text, File: file, Line: num})
		return nil
	})
}

func (c *Config) loadModules() error {
	seen := map[string]string{}
	return c.eachLine(ModulesFile, func(text, file string, num int) error {
		parts := strings.SplitN(text, ":", 3)
		if len(parts) < 2 {
			return fmt.Errorf("want stage1:<module> or stage2:<module>, got %q", text)
		}
		stage := 0
		switch strings.TrimSpace(parts[0]) {
		case "stage1":
			stage = 1
		case "stage2":
			stage = 2
		default:
			return fmt.Errorf("want stage1 or stage2 before ':', got %q", parts[0])
		}
		name := strings.TrimSpace(parts[1])
		if !moduleRe.MatchString(name) {
			return fmt.Errorf("want a module name (letters, digits, '_' or '-'), got %q", name)
		}
		key := strings.ReplaceAll(name, "-", "_")
		if prev, dup := seen[key]; dup {
			return fmt.Errorf("module %s is already listed at %s", name, prev)
		}
		seen[key] = fmt.Sprintf("%s:%d", file, num)
		c.Modules = append(c.Modules, Module{Stage: stage, Name: name, File: file, Line: num})
		return nil
	})
}

func (c *Config) loadFirmware() error {
	return c.eachLine(FirmwareFile, func(text, file string, num int) error {
		// The original allowed "name: description"; only the name matters.
		name, _, _ := strings.Cut(text, ":")
		name = strings.TrimSpace(name)
		if f := strings.Fields(name); len(f) != 1 || !firmwareRe.MatchString(name) {
			return fmt.Errorf("want one linux-firmware subpackage name such as rtl_nic, got %q", text)
		}
		c.Firmware = append(c.Firmware, FirmwareEntry{Name: name, File: file, Line: num})
		return nil
	})
}

// ModuleNames returns the modules.conf names of one stage, in file order.
func (c *Config) ModuleNames(stage int) []string {
	var out []string
	for _, m := range c.Modules {
		if m.Stage == stage {
			out = append(out, m.Name)
		}
	}
	return out
}

// FirmwareNames returns the firmware.conf entries in file order.
func (c *Config) FirmwareNames() []string {
	out := make([]string, len(c.Firmware))
	for i, f := range c.Firmware {
		out[i] = f.Name
	}
	return out
}
