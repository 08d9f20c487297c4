package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/cache"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/download"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
)

// Env is what every target needs: the project root, the loaded config, the
// stage engine and the logger. It is loaded once per mage process.
type Env struct {
	root    string
	cfg     *config.Config
	engine  *stage.Engine
	log     *logrus.Logger
	environ []string

	kverOnce sync.Once
	kver     string
	kverErr  error

	localStoreOnce sync.Once // says once that flists go to a local store

	// artifacts is the shared artifact cache (config/cache.conf); nil is off.
	artifacts *cache.Cache
}

// Options are what the mage targets pass to Load.
type Options struct {
	// Verbose logs at debug level (mage -v or -debug).
	Verbose bool
	// Root is the project root; empty finds it from the working directory
	// up.
	Root string
	// Environ is the environment (PROFILE, FORCE, key overrides); nil means
	// os.Environ().
	Environ []string
	// LogOut receives the log; nil means os.Stderr.
	LogOut io.Writer
}

// Load reads the project's config (PROFILE selects a profile, FORCE=1 reruns
// every stage) and opens the stage engine. A config error fails every target
// before anything is written.
func Load(opt Options) (*Env, error) {
	if opt.Environ == nil {
		opt.Environ = os.Environ()
	}
	if opt.LogOut == nil {
		opt.LogOut = os.Stderr
	}
	log := newLogger(opt.LogOut, opt.Verbose)
	root := opt.Root
	if root == "" {
		var err error
		if root, err = projectRoot(); err != nil {
			return nil, err
		}
	}
	cfg, err := config.Load(config.Options{Root: root, Profile: getenv(opt.Environ, "PROFILE"), Environ: opt.Environ})
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	if secrets := secretsOf(cfg); len(secrets) > 0 {
		log.Formatter = &logging.RedactingFormatter{Inner: log.Formatter, Secrets: secrets}
	}
	force, err := envFlag(opt.Environ, "FORCE")
	if err != nil {
		return nil, err
	}
	engine, err := stage.Open(stage.Options{
		Dir:   cfg.StateDir,
		Root:  root,
		Force: force,
		Log:   log,
	})
	if err != nil {
		return nil, err
	}
	artifacts, err := openArtifacts(cfg, log)
	if err != nil {
		return nil, err
	}
	return &Env{root: root, cfg: cfg, engine: engine, log: log, environ: opt.Environ, artifacts: artifacts}, nil
}

// getenv is the value of the environment variable name in the environment
// the Env was loaded with.
func (e *Env) getenv(name string) string { return getenv(e.environ, name) }

// getenv is os.Getenv over environ (NAME=value lines; the last one wins).
func getenv(environ []string, name string) string {
	v := ""
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}

// envFlag reads the boolean environment variable name (FORCE=1, DEEP=1):
// unset or empty is false, a value config.ParseBool refuses is an error.
func envFlag(environ []string, name string) (bool, error) {
	v := getenv(environ, name)
	if v == "" {
		return false, nil
	}
	b, err := config.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("environment variable %s: %w", name, err)
	}
	return b, nil
}

// flag is envFlag in the environment the Env was loaded with.
func (e *Env) flag(name string) (bool, error) { return envFlag(e.environ, name) }

// projectRoot is the nearest folder, from the working directory up, that
// holds magefiles/ and config/: mage may be started from any subfolder.
func projectRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if isDir(filepath.Join(d, "magefiles")) && isDir(filepath.Join(d, "config")) {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no zosbuilder project (a folder with magefiles/ and config/) at or above %s", dir)
		}
	}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func newLogger(out io.Writer, verbose bool) *logrus.Logger {
	log := logrus.New()
	log.Out = out
	log.Formatter = logging.LineFormatter{}
	if verbose {
		log.Level = logrus.DebugLevel
	}
	return log
}

// secretsOf lists the secrets of rfs.conf and cache.conf, which no log
// line or error may show.
func secretsOf(cfg *config.Config) []string {
	var all, out []string
	if r := cfg.RFS; r != nil {
		all = append(all, r.SecretKey, r.ReadSecretKey)
	}
	if c := cfg.Cache; c != nil {
		all = append(all, c.Secrets()...)
	}
	for _, s := range all {
		if len(s) >= 4 { // a one-letter "secret" would blank out half the log
			out = append(out, s)
		}
	}
	return out
}

// redact removes the rfs.conf and cache.conf secrets from an error before
// mage prints it.
func (e *Env) redact(err error) error {
	if err == nil {
		return err
	}
	msg := err.Error()
	clean := redact.Secrets(msg, secretsOf(e.cfg))
	if clean == msg {
		return err
	}
	return errors.New(clean)
}

// Root is the project root.
func (e *Env) Root() string { return e.root }

// Log is the logger every target and stage prints through.
func (e *Env) Log() *logrus.Logger { return e.log }

// values returns the named build.conf keys with their effective values, for a
// stage's fingerprint.
func (e *Env) values(keys ...string) map[string]string {
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		v, ok := e.cfg.Value(k)
		if !ok {
			panic("unknown build.conf key in a stage definition: " + k)
		}
		m[k] = v
	}
	return m
}

// configFile is the path of a config file (the profile's copy when present).
func (e *Env) configFile(name string) string { return e.cfg.Path(name) }

// inImage turns in-image paths (/sbin/zinit, etc/zero-os/...) into paths
// under INSTALL_DIR.
func (e *Env) inImage(paths ...string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Join(e.cfg.InstallDir, p)
	}
	return out
}

// resolve makes a path from a config file absolute against the project root.
func (e *Env) resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(e.root, p)
}

// fetcher is the one download layer: cache in CACHE_DIR, sha256-verified,
// retried, with progress on a terminal.
func (e *Env) fetcher(log logrus.FieldLogger) *download.Fetcher {
	return download.New(download.Options{CacheDir: e.cfg.CacheDir, Log: log, Progress: &progress.Options{Log: log}})
}
