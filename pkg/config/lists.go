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

func (c *Config) loadPackages() error {
	path := c.Path(PackagesFile)
	lines, err := readLines(path, true)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.rel(path), unwrapPathError(err))
	}
	var errs []error
	for _, l := range lines {
		where := fmt.Sprintf("%s:%d", c.rel(path), l.num)
		if f := strings.Fields(l.text); len(f) > 1 {
			errs = append(errs, fmt.Errorf("%s: one package per line, got %d: %s", where, len(f), l.text))
			continue
		}
		if !packageRe.MatchString(l.text) {
			errs = append(errs, fmt.Errorf("%s: want an apk package such as busybox or busybox>=1.36, got %q", where, l.text))
			continue
		}
		c.Packages = append(c.Packages, Package{Spec: l.text, File: c.rel(path), Line: l.num})
	}
	return errors.Join(errs...)
}

func (c *Config) loadModules() error {
	path := c.Path(ModulesFile)
	lines, err := readLines(path, true)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.rel(path), unwrapPathError(err))
	}
	var errs []error
	seen := map[string]string{}
	for _, l := range lines {
		where := fmt.Sprintf("%s:%d", c.rel(path), l.num)
		parts := strings.SplitN(l.text, ":", 3)
		if len(parts) < 2 {
			errs = append(errs, fmt.Errorf("%s: want stage1:<module> or stage2:<module>, got %q", where, l.text))
			continue
		}
		stage := 0
		switch strings.TrimSpace(parts[0]) {
		case "stage1":
			stage = 1
		case "stage2":
			stage = 2
		default:
			errs = append(errs, fmt.Errorf("%s: want stage1 or stage2 before ':', got %q", where, parts[0]))
			continue
		}
		name := strings.TrimSpace(parts[1])
		if !moduleRe.MatchString(name) {
			errs = append(errs, fmt.Errorf("%s: want a module name (letters, digits, '_' or '-'), got %q", where, name))
			continue
		}
		key := strings.ReplaceAll(name, "-", "_")
		if prev, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s: module %s is already listed at %s", where, name, prev))
			continue
		}
		seen[key] = where
		c.Modules = append(c.Modules, Module{Stage: stage, Name: name, File: c.rel(path), Line: l.num})
	}
	return errors.Join(errs...)
}

func (c *Config) loadFirmware() error {
	path := c.Path(FirmwareFile)
	lines, err := readLines(path, true)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.rel(path), unwrapPathError(err))
	}
	var errs []error
	for _, l := range lines {
		where := fmt.Sprintf("%s:%d", c.rel(path), l.num)
		// The original allowed "name: description"; only the name matters.
		name, _, _ := strings.Cut(l.text, ":")
		name = strings.TrimSpace(name)
		if f := strings.Fields(name); len(f) != 1 || !firmwareRe.MatchString(name) {
			errs = append(errs, fmt.Errorf("%s: want one linux-firmware subpackage name such as rtl_nic, got %q", where, l.text))
			continue
		}
		c.Firmware = append(c.Firmware, FirmwareEntry{Name: name, File: c.rel(path), Line: l.num})
	}
	return errors.Join(errs...)
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
