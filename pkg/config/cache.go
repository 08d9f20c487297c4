package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CacheConfFile names the cache config under config/ (or the profile's).
const CacheConfFile = "cache.conf"

// Cache holds config/cache.conf: the artifact store shared by the team's
// machines, which components_build and kernel_modules restore from and
// publish to, and the compile cache for what they still compile. The file
// is git-ignored (it holds credentials); config/cache.conf.example is the
// committed template. Without the file both caches are off.
type Cache struct {
	URL       string `key:"CACHE_URL" required:"true" check:"storeurl" doc:"artifact store: dir:///abs/path (a local or shared folder) or s3://HOST:PORT/BUCKET[/PREFIX] (s3s:// for TLS); keys go in CACHE_ACCESS_KEY and CACHE_SECRET_KEY, not in the URL"`
	Region    string `key:"CACHE_REGION" doc:"S3 region of CACHE_URL (empty: us-east-1)"`
	AccessKey string `key:"CACHE_ACCESS_KEY" secret:"true" doc:"S3 access key of the artifact store"`
	SecretKey string `key:"CACHE_SECRET_KEY" secret:"true" doc:"S3 secret key of the artifact store (never printed)"`
	Push      bool   `key:"CACHE_PUSH" default:"true" doc:"publish what this machine builds; false only restores (read-only keys, a laptop)"`
	// MaxAge and MaxSize bound the store when cache:prune runs.
	MaxAge  time.Duration `key:"CACHE_MAX_AGE" default:"30d" check:"duration" doc:"mage cache:prune removes artifacts published longer ago than this (e.g. 30d, 12h; 0: no age bound)"`
	MaxSize int64         `key:"CACHE_MAX_SIZE" default:"0" check:"size" doc:"mage cache:prune then removes the oldest artifacts until the store holds at most this much (e.g. 50G; 0: no size bound)"`

	CompileCache       string `key:"COMPILE_CACHE" default:"ccache" check:"enum:ccache|off" doc:"compile the kernel through ccache (with the remote storage below), or off"`
	CompileCacheDir    string `key:"COMPILE_CACHE_DIR" check:"path" doc:"ccache's local folder on this machine; empty: CACHE_DIR/ccache"`
	CompileCacheSize   int64  `key:"COMPILE_CACHE_SIZE" default:"5G" check:"size" doc:"size bound of the local ccache folder"`
	CompileCacheRemote string `key:"COMPILE_CACHE_REMOTE" check:"remoteurl" doc:"ccache remote storage shared by the team: redis://[[USER:]PASSWORD@]HOST[:PORT], http://HOST[:PORT]/PATH or file:///shared/dir; empty: local only"`

	// File is where the settings came from (relative to the project root).
	File string
}

// loadCache reads cache.conf when it exists. Without it Cache stays nil.
func (c *Config) loadCache(env map[string]string, environ []string) error {
	path := c.Path(CacheConfFile)
	if !fileExists(path) {
		return nil
	}
	keys := keysOf(Cache{})
	raw, err := c.readShellFiles([]string{path}, keys, env, environ, true)
	if err != nil {
		return err
	}
	cc := &Cache{File: c.rel(path)}
	if err := c.apply(cc, keys, raw, false); err != nil {
		return err
	}
	if cc.CompileCacheDir == "" {
		cc.CompileCacheDir = filepath.Join(c.CacheDir, "ccache")
	}
	if strings.HasPrefix(cc.URL, "s3") && (cc.AccessKey == "") != (cc.SecretKey == "") {
		return fmt.Errorf("%s: CACHE_ACCESS_KEY and CACHE_SECRET_KEY must be set together", cc.File)
	}
	c.Cache = cc
	return nil
}

// checkStoreURL accepts dir:///abs/path, s3://HOST:PORT/BUCKET[/PREFIX] and
// s3s://..., without credentials (they have keys of their own, which are
// never printed).
func checkStoreURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("want dir:///abs/path or s3://HOST:PORT/BUCKET[/PREFIX], got a value that is not a URL")
	}
	if u.User != nil {
		return fmt.Errorf("the URL holds credentials; put them in CACHE_ACCESS_KEY and CACHE_SECRET_KEY")
	}
	switch u.Scheme {
	case "dir":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return fmt.Errorf("want dir:///abs/path (an absolute path), got %q", raw)
		}
	case "s3", "s3s":
		if u.Hostname() == "" || u.Port() == "" || strings.Trim(u.Path, "/") == "" {
			return fmt.Errorf("want s3://HOST:PORT/BUCKET[/PREFIX], got %q", raw)
		}
	default:
		return fmt.Errorf("want dir:///abs/path or s3://HOST:PORT/BUCKET[/PREFIX] (s3s:// for TLS), got %q", raw)
	}
	return nil
}

// checkRemoteURL accepts the ccache remote storage kinds Debian's ccache
// 4.7 supports. A password in the URL is never echoed.
func checkRemoteURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("want redis://HOST[:PORT], http://HOST/PATH or file:///dir, got a value that is not a URL")
	}
	switch u.Scheme {
	case "redis", "http":
		if u.Host == "" {
			return fmt.Errorf("want %s://HOST[:PORT]..., got %q", u.Scheme, u.Redacted())
		}
	case "file":
		if !filepath.IsAbs(u.Path) {
			return fmt.Errorf("want file:///abs/dir, got %q", u.Redacted())
		}
	default:
		return fmt.Errorf("want redis://, http:// or file:// (what ccache 4.7 supports), got %q", u.Redacted())
	}
	return nil
}

// parseDuration reads "0", "90m", "12h", "30d" (days) or any Go duration.
func parseDuration(raw string) (int64, error) {
	s := strings.TrimSpace(raw)
	if s == "" || s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseInt(days, 10, 64); err == nil && n >= 0 {
			return int64(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration such as 30d, 12h or 90m, got %q", raw)
	}
	return int64(d), nil
}

// Secrets returns the secret values of the cache config (the S3 secret key
// and a password in COMPILE_CACHE_REMOTE), for log redaction.
func (cc *Cache) Secrets() []string {
	var out []string
	if cc.SecretKey != "" {
		out = append(out, cc.SecretKey)
	}
	if u, err := url.Parse(cc.CompileCacheRemote); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw)
		} else if name := u.User.Username(); name != "" {
			out = append(out, name) // redis://PASSWORD@HOST: the only field is the password
		}
	}
	return out
}
