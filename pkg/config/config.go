// Package config reads everything under config/: build.conf and rfs.conf
// (bash KEY="value" files, parsed with a real shell parser), packages.list,
// sources.conf, modules.conf and firmware.conf. It is the one place these
// formats are parsed. Every value is typed and validated when loaded, and
// every error names the file, line and key at fault, so a bad config fails a
// build before any stage writes anything.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/nearest"
)

// Names of the files under config/.
const (
	BuildConfFile    = "build.conf"
	RFSConfFile      = "rfs.conf"
	PackagesFile     = "packages.list"
	SourcesFile      = "sources.conf"
	ModulesFile      = "modules.conf"
	FirmwareFile     = "firmware.conf"
	KernelConfigFile = "kernel.config"
	InitFile         = "init"
)

// Options select what Load reads.
type Options struct {
	// Root is the project root; relative directories in the config resolve
	// against it, never against the caller's working directory.
	Root string
	// Profile names config/profiles/<Profile>/: its build.conf is read after
	// config/build.conf and overrides it, and any other file present there
	// replaces the one in config/.
	Profile string
	// Environ is the process environment (os.Environ() when nil). A variable
	// named like a key overrides the files.
	Environ []string
}

// Config is the loaded configuration.
type Config struct {
	Build
	// RFS is nil when there is no rfs.conf: flists then go to a local store.
	RFS *RFS
	// Cache is nil when there is no cache.conf: nothing is shared.
	Cache      *Cache
	Packages   []Package
	Components []Component
	Modules    []Module
	Firmware   []FirmwareEntry

	Root    string
	Profile string
	// Warnings are problems that do not stop a build (unknown keys).
	Warnings []string

	origins map[string]Origin
	values  map[string]string
}

// Origin says where a value came from.
type Origin struct {
	File string // relative to the root; "" for the environment or a default
	Line int
	Env  bool
}

func (o Origin) String() string {
	switch {
	case o.Env:
		return "environment"
	case o.File == "":
		return "default"
	}
	return fmt.Sprintf("%s:%d", o.File, o.Line)
}

// Load reads and validates the whole configuration. All problems found are
// returned together.
func Load(opt Options) (*Config, error) {
	if opt.Environ == nil {
		opt.Environ = os.Environ()
	}
	root, err := filepath.Abs(opt.Root)
	if err != nil {
		return nil, fmt.Errorf("resolve project root %s: %w", opt.Root, err)
	}
	c := &Config{Root: root, Profile: opt.Profile, origins: map[string]Origin{}, values: map[string]string{}}
	if opt.Profile != "" {
		if !tagRe.MatchString(opt.Profile) {
			return nil, fmt.Errorf("PROFILE: want a folder name under config/profiles, got %q", opt.Profile)
		}
		if st, err := os.Stat(c.profileDir()); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("PROFILE=%s: %s is not a directory", opt.Profile, c.rel(c.profileDir()))
		}
	}
	env := environMap(opt.Environ)

	var errs []error
	if err := c.loadBuild(env, opt.Environ); err != nil {
		errs = append(errs, err)
	}
	if err := c.loadRFS(env, opt.Environ); err != nil {
		errs = append(errs, err)
	}
	if err := c.loadCache(env, opt.Environ); err != nil {
		errs = append(errs, err)
	}
	for _, load := range []func() error{c.loadPackages, c.loadComponents, c.loadModules, c.loadFirmware, c.checkMoved} {
		if err := load(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Path returns the file a config name resolves to: the profile's copy when
// the profile has one, else config/<name>.
func (c *Config) Path(name string) string {
	if c.Profile != "" {
		p := filepath.Join(c.profileDir(), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join(c.Root, "config", name)
}

// ProfileDir returns the profile's folder name (config/profiles/<profile>/
// <name>) when the profile has one, else "": a folder the profile adds to
// the shipped one, such as its zinit units.
func (c *Config) ProfileDir(name string) string {
	if c.Profile == "" {
		return ""
	}
	p := filepath.Join(c.profileDir(), name)
	if st, err := os.Stat(p); err != nil || !st.IsDir() {
		return ""
	}
	return p
}

func (c *Config) profileDir() string {
	return filepath.Join(c.Root, "config", "profiles", c.Profile)
}

// rel shortens a path under the root for messages.
func (c *Config) rel(p string) string {
	if r, err := filepath.Rel(c.Root, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// Origin returns where a key's value came from.
func (c *Config) Origin(key string) Origin { return c.origins[key] }

// Value returns a build.conf key's effective value as text, as it is
// fingerprinted by the stages that read it. Secrets are not available here.
func (c *Config) Value(key string) (string, bool) {
	v, ok := c.values[key]
	return v, ok
}

// Keys lists the build.conf keys in declaration order with their effective
// value and origin, for `mage config`.
func (c *Config) Keys() []KeyValue {
	var out []KeyValue
	for _, k := range keysOf(Build{}) {
		out = append(out, KeyValue{Name: k.Name, Value: c.values[k.Name], Origin: c.origins[k.Name], Doc: k.Doc, Default: k.Default})
	}
	return out
}

// KeyValue is one row of Keys.
type KeyValue struct {
	Name, Value, Doc, Default string
	Origin                    Origin
}

// Reference lists every key of build.conf, rfs.conf and cache.conf with its
// default and documentation, for the README's config reference.
func Reference() (build, rfs, cache []KeyValue) {
	ref := func(v any) []KeyValue {
		var out []KeyValue
		for _, k := range keysOf(v) {
			out = append(out, KeyValue{Name: k.Name, Default: k.Default, Doc: k.Doc})
		}
		return out
	}
	return ref(Build{}), ref(RFS{}), ref(Cache{})
}

func environMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// loadBuild reads config/build.conf (and the profile's), applies the
// environment and defaults, and types every key.
func (c *Config) loadBuild(env map[string]string, environ []string) error {
	files := []string{filepath.Join(c.Root, "config", BuildConfFile)}
	if c.Profile != "" {
		if p := filepath.Join(c.profileDir(), BuildConfFile); fileExists(p) {
			files = append(files, p)
		}
	}
	raw, err := c.readShellFiles(files, keysOf(Build{}), env, environ, true)
	if err != nil {
		return err
	}
	if err := c.apply(&c.Build, keysOf(Build{}), raw, true); err != nil {
		return err
	}
	c.Build.finish()
	c.values["JOBS"] = fmt.Sprint(c.Jobs)
	if (c.AlpineMinirootfsVersion == "") != (c.AlpineMinirootfsSHA256 == "") {
		o := c.origins["ALPINE_MINIROOTFS_VERSION"]
		if c.AlpineMinirootfsVersion == "" {
			o = c.origins["ALPINE_MINIROOTFS_SHA256"]
		}
		return fmt.Errorf("%s: ALPINE_MINIROOTFS_VERSION and ALPINE_MINIROOTFS_SHA256 pin a release together: set both or neither", o)
	}
	return nil
}

// rawValue is a key's text before typing, with where it came from.
type rawValue struct {
	text   string
	origin Origin
}

// readShellFiles evaluates shell-syntax files in order and returns the last
// value of each assigned key. Unknown keys become warnings.
func (c *Config) readShellFiles(files []string, keys []keySpec, env map[string]string, environ []string, mustExist bool) (map[string]rawValue, error) {
	known := make([]string, len(keys))
	for i, k := range keys {
		known[i] = k.Name
	}
	override := func(key string) (string, bool) {
		v, ok := env[key]
		return v, ok && v != ""
	}
	scope := newShellVars(environ)
	// The original scripts exposed the project root as PROJECT_ROOT; config
	// files may use it to name folders outside the default layout.
	scope.vars["PROJECT_ROOT"] = c.Root
	raw := map[string]rawValue{}
	var errs []error
	for i, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) && (!mustExist || i > 0) {
				continue
			}
			errs = append(errs, fmt.Errorf("read %s: %w", c.rel(f), unwrapPathError(err)))
			continue
		}
		name := c.rel(f)
		assigns, err := parseShell(name, src, scope, override)
		if err != nil {
			errs = append(errs, err)
		}
		for _, a := range assigns {
			if !slices.Contains(known, a.Key) {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: unknown key %s%s", name, a.Line, a.Key, suggest(a.Key, known)))
				continue
			}
			o := Origin{File: name, Line: a.Line}
			if _, ok := override(a.Key); ok {
				o = Origin{Env: true}
			}
			raw[a.Key] = rawValue{text: a.Value, origin: o}
		}
	}
	for _, k := range known {
		if v, ok := override(k); ok {
			raw[k] = rawValue{text: v, origin: Origin{Env: true}}
		}
	}
	return raw, errors.Join(errs...)
}

// apply types raw values into dst (a pointer to a tagged struct), filling
// defaults for absent keys.
func (c *Config) apply(dst any, keys []keySpec, raw map[string]rawValue, record bool) error {
	var errs []error
	for _, k := range keys {
		v, ok := raw[k.Name]
		if !ok {
			v = rawValue{text: k.Default}
		}
		if err := k.set(dst, v.text, c.Root); err != nil {
			if k.Secret && v.text != "" {
				err = fmt.Errorf("invalid value (not shown: %s is a secret)", k.Name)
			}
			where := v.origin.String()
			if !ok {
				where = "default"
			}
			errs = append(errs, fmt.Errorf("%s: %s: %w", where, k.Name, err))
			continue
		}
		if record {
			c.origins[k.Name] = v.origin
			c.values[k.Name] = fieldText(dst, k)
		}
	}
	return errors.Join(errs...)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// suggest returns " (did you mean X?)" for the closest known name, or "".
func suggest(name string, known []string) string {
	if best := nearest.Names(name, known, 1); len(best) > 0 {
		return fmt.Sprintf(" (did you mean %s?)", best[0])
	}
	return ""
}
