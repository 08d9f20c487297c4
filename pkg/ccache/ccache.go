// Package ccache puts ccache (https://ccache.dev) between a build and gcc,
// with a local cache folder and, optionally, a remote storage the team
// shares (Redis, HTTP or a shared folder: what Debian's ccache 4.7 has).
//
// ccache is put in front through a masquerade folder first in PATH (gcc ->
// ccache), never by changing CC: kbuild records each object's command line
// and rebuilds an object whose command changed, so a tree built with the
// cache must look exactly like one built without it. Hashing is made
// independent of where the work tree lives (base_dir, hash_dir off), so
// machines that build in different paths share results.
package ccache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrUnreachable is wrapped by Session.RemoteErr when the remote storage
// did not answer.
var ErrUnreachable = errors.New("compile cache remote storage unreachable")

// probeTimeout bounds the reachability check of the remote storage.
const probeTimeout = 3 * time.Second

// Options configure Setup; they are config/cache.conf's COMPILE_CACHE_* keys.
type Options struct {
	// Bin is the ccache program; "" looks it up on PATH.
	Bin string
	// Dir is the local cache folder (COMPILE_CACHE_DIR).
	Dir string
	// MaxSize bounds Dir in bytes (COMPILE_CACHE_SIZE); 0 keeps ccache's default.
	MaxSize int64
	// Remote is the shared storage URL (COMPILE_CACHE_REMOTE), e.g.
	// redis://HOST:PORT; "" is local only. It may hold a password, which
	// never appears in an error.
	Remote string
	// BaseDir is an absolute folder (the kernel work folder) below which
	// absolute paths are hashed as relative ones.
	BaseDir string
	// Compilers are the names put in front of ccache; default gcc and cc.
	Compilers []string
	// OnUnreachable is called when the remote storage stops answering
	// during a Watch (with the redacted URL); the session has then already
	// stopped using it.
	OnUnreachable func(what string, err error)
}

// Session is a prepared compile cache.
type Session struct {
	opt  Options
	bin  string
	masq string
	conf string // the ccache configuration file this session writes
	// RemoteErr is why the remote storage is not used (it did not answer
	// the probe), or nil. The session then caches locally only.
	RemoteErr error
}

// Setup checks ccache, makes the local folder and the masquerade folder
// (Dir/bin), probes the remote storage and writes the configuration
// (BaseDir/.ccache.conf; it may hold the remote's password, so it is
// private to the user).
func Setup(ctx context.Context, opt Options) (*Session, error) {
	bin := opt.Bin
	if bin == "" {
		bin = "ccache"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("compile cache: %w (install the ccache package, or set COMPILE_CACHE=off)", err)
	}
	if path, err = filepath.Abs(path); err != nil {
		return nil, fmt.Errorf("compile cache: %w", err)
	}
	if opt.Dir == "" || !filepath.IsAbs(opt.Dir) || !filepath.IsAbs(opt.BaseDir) {
		return nil, fmt.Errorf("compile cache: the local folder (%q) and base folder (%q) must be absolute", opt.Dir, opt.BaseDir)
	}
	s := &Session{opt: opt, bin: path, masq: filepath.Join(opt.Dir, "bin"), conf: filepath.Join(opt.BaseDir, ".ccache.conf")}
	if err := s.masquerade(); err != nil {
		return nil, fmt.Errorf("compile cache: %w", err)
	}
	if opt.Remote != "" {
		s.RemoteErr = Probe(ctx, opt.Remote)
	}
	if err := s.writeConfig(opt.Remote != "" && s.RemoteErr == nil); err != nil {
		return nil, fmt.Errorf("compile cache: %w", err)
	}
	return s, nil
}

// writeConfig writes the settings ccache reads at every call, so turning
// the remote storage off takes effect in a build that is running.
func (s *Session) writeConfig(remote bool) error {
	lines := []string{
		"base_dir = " + s.opt.BaseDir,
		// The working directory is the kernel's objtree, whose path differs
		// between machines; without debug info it does not change the object.
		"hash_dir = false",
		// The same gcc on every machine of the team, whatever its mtime.
		"compiler_check = content",
	}
	if s.opt.MaxSize > 0 {
		lines = append(lines, "max_size = "+strconv.FormatInt(s.opt.MaxSize/1024, 10)+"Ki")
	}
	if remote {
		lines = append(lines, "remote_storage = "+s.opt.Remote)
	}
	if err := os.MkdirAll(filepath.Dir(s.conf), 0o755); err != nil {
		return err
	}
	tmp := s.conf + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.conf)
}

// Watch probes the remote storage every interval until the returned stop
// is called. When it stops answering, the remote is turned off for the
// rest of the session (ccache would otherwise wait for it at every call)
// and OnUnreachable is told, once.
func (s *Session) Watch(ctx context.Context, interval time.Duration) (stop func()) {
	if s.opt.Remote == "" || s.RemoteErr != nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := Probe(ctx, s.opt.Remote)
			if err == nil || ctx.Err() != nil {
				continue
			}
			if werr := s.writeConfig(false); werr != nil {
				err = errors.Join(err, werr)
			}
			if s.opt.OnUnreachable != nil {
				s.opt.OnUnreachable(Redact(s.opt.Remote), err)
			}
			return
		}
	}()
	return func() { cancel(); <-done }
}

func (s *Session) masquerade() error {
	if err := os.MkdirAll(s.masq, 0o755); err != nil {
		return err
	}
	names := s.opt.Compilers
	if len(names) == 0 {
		names = []string{"gcc", "cc"}
	}
	for _, n := range names {
		link := filepath.Join(s.masq, n)
		if target, err := os.Readlink(link); err == nil && target == s.bin {
			continue
		}
		tmp := link + ".tmp"
		_ = os.Remove(tmp)
		if err := os.Symlink(s.bin, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, link); err != nil {
			return err
		}
	}
	return nil
}

// Env is what to add to the build's environment: PATH with the masquerade
// folder first, the local folder and the configuration file. The caller's
// own CCACHE_* variables (CCACHE_DISABLE, CCACHE_DEBUG) still apply.
func (s *Session) Env() []string {
	return []string{
		"PATH=" + s.masq + string(os.PathListSeparator) + os.Getenv("PATH"),
		"CCACHE_DIR=" + s.opt.Dir,
		"CCACHE_CONFIGPATH=" + s.conf,
	}
}

// Stats are ccache's counters for the local folder.
type Stats map[string]int64

// Stats reads the counters (ccache --print-stats).
func (s *Session) Stats(ctx context.Context) (Stats, error) { return ReadStats(ctx, s.bin, s.opt.Dir) }

// ReadStats reads the counters of a local cache folder with the ccache
// program bin ("" looks it up on PATH).
func ReadStats(ctx context.Context, bin, dir string) (Stats, error) {
	if bin == "" {
		bin = "ccache"
	}
	cmd := exec.CommandContext(ctx, bin, "--print-stats")
	cmd.Env = append(os.Environ(), "CCACHE_DIR="+dir)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ccache --print-stats: %w", err)
	}
	st := Stats{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "\t")
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); ok && err == nil {
			st[k] = n
		}
	}
	return st, nil
}

// Delta is what a build did, the difference of two Stats.
type Delta struct {
	Hits, Misses     int64 // compilations served from the cache, and compiled
	RemoteHits       int64 // of the hits, from the remote storage
	RemoteErrors     int64 // remote storage errors and timeouts
	Uncacheable      int64 // calls ccache passed to gcc (links, preprocessing, tests)
	HitRate          float64
	LocalStorageSize int64 // bytes in the local folder afterwards
}

// Since returns what happened between before and s.
func (s Stats) Since(before Stats) Delta {
	d := func(k string) int64 { return s[k] - before[k] }
	out := Delta{
		Hits:         d("direct_cache_hit") + d("preprocessed_cache_hit"),
		Misses:       d("cache_miss"),
		RemoteHits:   d("remote_storage_hit"),
		RemoteErrors: d("remote_storage_error") + d("remote_storage_timeout"),
		Uncacheable: d("called_for_link") + d("called_for_preprocessing") + d("autoconf_test") +
			d("no_input_file") + d("unsupported_compiler_option") + d("compile_failed") + d("preprocessor_error"),
		LocalStorageSize: s["cache_size_kibibyte"] * 1024,
	}
	if n := out.Hits + out.Misses; n > 0 {
		out.HitRate = float64(out.Hits) / float64(n)
	}
	return out
}

// String is the summary a build logs.
func (d Delta) String() string {
	return fmt.Sprintf("compile cache: %d of %d compilations from the cache (%.1f%%, %d from the remote storage), %d compiled",
		d.Hits, d.Hits+d.Misses, 100*d.HitRate, d.RemoteHits, d.Misses)
}

// Probe checks that a remote storage answers: a Redis PING, an HTTP
// request, or a writable folder. The error wraps ErrUnreachable and names
// the storage without its password.
func Probe(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: the URL does not parse", ErrUnreachable)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	switch u.Scheme {
	case "redis":
		err = probeRedis(ctx, u)
	case "http":
		err = probeHTTP(ctx, u)
	case "file":
		err = probeFolder(u.Path)
	default:
		err = fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, Redact(raw), err)
	}
	return nil
}

func probeRedis(ctx context.Context, u *url.URL) error {
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	// +PONG, or -NOAUTH from a server that wants the password ccache sends.
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("not a Redis server: it answered %q", strings.TrimSpace(line))
	}
	return nil
}

func probeHTTP(ctx context.Context, u *url.URL) error {
	clean := *u
	clean.User = nil
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, clean.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return uerr.Err // the URL is named by the caller, redacted
		}
		return err
	}
	resp.Body.Close()
	return nil
}

func probeFolder(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// Redact hides the password of a remote storage URL.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("***")
	}
	return u.String()
}
