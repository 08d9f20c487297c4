// Package cache shares what the expensive stages build between machines.
// After a stage builds an artifact (the kernel's modules and objects, a
// component's binary) it publishes it to a store (a shared folder or an S3
// bucket) under a key derived from what made it (Recipe); a stage on another
// machine that would build the same thing restores it instead.
//
// An artifact is two objects: its data, a zstd-compressed tar named by its
// own sha256 (data/<sha256>.tar.zst), and a small manifest naming it
// (<stage>/<key>.json), written last. A restore downloads the data to a local
// file, checks its size and sha256 against the manifest and only then
// extracts it, so a corrupt or partial object is never used: it is reported
// once and the stage builds locally. The cache never fails a build: when the
// store cannot be reached the build says so once and carries on without it.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
	"github.com/threefoldtech/zosbuilder/pkg/stage"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// manifestFormat is the first field of every manifest.
const manifestFormat = "zosbuilder-artifact-manifest/1"

// maxManifest bounds what is read of a manifest (a recipe is a few KB).
const maxManifest = 1 << 20

// ErrCorrupt is wrapped when an artifact in the store does not match its
// manifest (truncated, damaged, or not an artifact at all).
var ErrCorrupt = errors.New("corrupt artifact")

// Options configure Open; they are config/cache.conf's artifact keys.
type Options struct {
	// URL is CACHE_URL: dir:///abs/path or s3://HOST:PORT/BUCKET[/PREFIX]
	// (s3s:// for TLS), without credentials.
	URL string
	// Region, AccessKey and SecretKey are the S3 settings; SecretKey never
	// appears in a message.
	Region, AccessKey, SecretKey string
	// Push publishes artifacts built here (CACHE_PUSH).
	Push bool
	// StateDir is where this work tree's cache statistics are kept
	// (STATE_DIR).
	StateDir string
	// Timeouts bound the S3 store's network waits; zero fields take
	// httpclient's defaults.
	Timeouts httpclient.Timeouts
	// Log receives the publish lines and the warnings.
	Log logrus.FieldLogger
}

// Cache is an open artifact cache, safe for concurrent use by the stages
// of one build. A nil *Cache is a cache that is off: Do just builds.
type Cache struct {
	objects store.Objects
	where   string
	push    bool
	log     logrus.FieldLogger
	stats   *statsFile

	mu    sync.Mutex
	down  bool            // the store is unreachable: no more requests in this process
	said  bool            // a cache was reported unreachable
	swept map[string]bool // folders cleared of leftovers (stagingDir)
}

// Open returns the cache the options describe. It does not contact the
// store: a store that cannot be reached is found out, and said once, by the
// first stage that asks.
func Open(opt Options) (*Cache, error) {
	raw, err := storeURL(opt)
	if err != nil {
		return nil, err
	}
	objs, err := store.OpenObjects(raw, store.ObjectOptions{Timeouts: opt.Timeouts})
	if err != nil {
		return nil, fmt.Errorf("artifact cache: %w", err)
	}
	log := opt.Log
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		log = l
	}
	return &Cache{objects: objs, where: objs.String(), push: opt.Push, log: log, swept: map[string]bool{},
		stats: &statsFile{path: filepath.Join(opt.StateDir, "cache-stats.json")}}, nil
}

// storeURL adds the credentials and region to an s3:// CACHE_URL.
func storeURL(opt Options) (string, error) {
	u, err := url.Parse(opt.URL)
	if err != nil || u.User != nil {
		return "", fmt.Errorf("artifact cache: CACHE_URL must be dir:///abs/path or s3://HOST:PORT/BUCKET[/PREFIX] without credentials: %w", store.ErrInvalidURL)
	}
	if u.Scheme == "s3" || u.Scheme == "s3s" {
		if opt.AccessKey != "" {
			u.User = url.UserPassword(opt.AccessKey, opt.SecretKey)
		}
		if opt.Region != "" {
			q := u.Query()
			q.Set("region", opt.Region)
			u.RawQuery = q.Encode()
		}
	}
	return u.String(), nil
}

// Where names the store for messages (no credentials).
func (c *Cache) Where() string { return c.where }

// Artifact is what a stage publishes: the recipe that names it and the
// files and folders it consists of.
type Artifact struct {
	Recipe *Recipe
	Parts  []Part
	// Log, when set, takes the artifact's warnings and its "published"
	// line: the stage's logger, so they carry the stage's name. Nil is the
	// cache's logger.
	Log logrus.FieldLogger
}

func (c *Cache) logFor(a Artifact) logrus.FieldLogger {
	if a.Log != nil {
		return a.Log
	}
	return c.log
}

// Do restores the artifact when the store holds it, and otherwise runs
// build and publishes what it made. It reports the hit or miss to the stage
// engine (stage.ReportCache). Only build's error is returned: a cache that
// fails is a warning and a local build.
func (c *Cache) Do(ctx context.Context, a Artifact, build func(context.Context) error) error {
	if c == nil {
		return build(ctx)
	}
	start := time.Now()
	key := a.Recipe.Key()
	n, err := c.restore(ctx, a, key)
	if err == nil {
		note := fmt.Sprintf("%s from %s, %s", short(key), c.where, humanize.IBytes(uint64(n)))
		stage.ReportCache(ctx, true, note)
		c.record(a, key, outcomeHit, n, time.Since(start))
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		c.logFor(a).Warnf("%s: %v; building it here", a.id(), err)
	}
	if err := build(ctx); err != nil {
		return err
	}
	stage.ReportCache(ctx, false, "")
	published := c.publish(ctx, a, key)
	c.record(a, key, outcomeMiss, published, time.Since(start))
	return nil
}

func (a Artifact) id() string {
	if a.Recipe.Name == a.Recipe.Stage {
		return a.Recipe.Stage
	}
	return a.Recipe.Stage + "/" + a.Recipe.Name
}

func short(key string) string { return key[:12] }

func manifestName(stageName, key string) string { return stageName + "/" + key + ".json" }

func dataName(sum string) string { return "data/" + sum + ".tar.zst" }

// manifest is the small object that names an artifact's data.
type manifest struct {
	Format   string    `json:"format"`
	Stage    string    `json:"stage"`
	Name     string    `json:"name"`
	Key      string    `json:"key"`
	Object   string    `json:"object"`
	SHA256   string    `json:"sha256"`
	Size     int64     `json:"size"`
	Unpacked int64     `json:"unpacked"`
	Created  time.Time `json:"created"`
	Recipe   string    `json:"recipe"`

	modified time.Time // the object's time in the store
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (m manifest) check(stageName, key string) error {
	switch {
	case m.Format != manifestFormat:
		return fmt.Errorf("%w: manifest format %q", ErrCorrupt, m.Format)
	case m.Stage != stageName || m.Key != key:
		return fmt.Errorf("%w: manifest is for %s/%s", ErrCorrupt, m.Stage, m.Key)
	case !hexSHA256.MatchString(m.SHA256) || m.Object != dataName(m.SHA256):
		return fmt.Errorf("%w: manifest names object %q with sha256 %q", ErrCorrupt, m.Object, m.SHA256)
	case m.Size <= 0:
		return fmt.Errorf("%w: manifest gives size %d", ErrCorrupt, m.Size)
	}
	return nil
}

// restore fetches, verifies and unpacks the artifact; it returns the bytes
// downloaded. A miss is an error wrapping store.ErrNotFound.
func (c *Cache) restore(ctx context.Context, a Artifact, key string) (int64, error) {
	if c.isDown() {
		return 0, fmt.Errorf("artifact cache is off for this build: %w", store.ErrNotFound)
	}
	m, err := c.readManifest(ctx, a.Recipe.Stage, key)
	if err != nil {
		return 0, err
	}
	staging, err := c.stagingDir(a.Parts[0].Path, ".cache-restore-")
	if err != nil {
		return 0, fmt.Errorf("restore artifact %s: %w", short(key), err)
	}
	defer os.RemoveAll(staging)
	file := filepath.Join(staging, "artifact.tar.zst")
	if err := c.download(ctx, m, file); err != nil {
		return 0, err
	}
	if err := unpack(ctx, file, filepath.Join(staging, "tree"), a.Parts); err != nil {
		return 0, fmt.Errorf("artifact %s from %s: %w: %w", short(key), c.where, ErrCorrupt, err)
	}
	c.touch(ctx, m)
	return m.Size, nil
}

func (c *Cache) readManifest(ctx context.Context, stageName, key string) (manifest, error) {
	name := manifestName(stageName, key)
	r, info, err := c.objects.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return manifest{}, err
	}
	if err != nil {
		return manifest{}, c.unreachable(err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return manifest{}, c.unreachable(err)
	}
	var m manifest
	if len(b) > maxManifest {
		return manifest{}, fmt.Errorf("artifact manifest %s in %s: %w: larger than %d bytes", name, c.where, ErrCorrupt, maxManifest)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return manifest{}, fmt.Errorf("artifact manifest %s in %s: %w: %v", name, c.where, ErrCorrupt, err)
	}
	if err := m.check(stageName, key); err != nil {
		return manifest{}, fmt.Errorf("artifact manifest %s in %s: %w", name, c.where, err)
	}
	m.modified = info.Modified
	return m, nil
}

// download copies the artifact's data to file and checks its size and
// sha256 before anything reads it.
func (c *Cache) download(ctx context.Context, m manifest, file string) error {
	r, info, err := c.objects.Get(ctx, m.Object)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("artifact %s: %w: its data %s is missing from %s", short(m.Key), ErrCorrupt, m.Object, c.where)
	}
	if err != nil {
		return c.unreachable(err)
	}
	defer r.Close()
	if info.Size != m.Size {
		return fmt.Errorf("artifact %s: %w: %s is %d bytes, the manifest says %d", short(m.Key), ErrCorrupt, m.Object, info.Size, m.Size)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("artifact %s: %w", short(m.Key), err)
	}
	h := sha256.New()
	n, cerr := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, m.Size+1))
	if err := errors.Join(cerr, f.Close()); err != nil {
		if cerr != nil && ctx.Err() == nil {
			return c.unreachable(err)
		}
		return fmt.Errorf("artifact %s: %w", short(m.Key), err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != m.Size || sum != m.SHA256 {
		return fmt.Errorf("artifact %s: %w: %s has %d bytes with sha256 %s, the manifest says %d bytes with %s",
			short(m.Key), ErrCorrupt, m.Object, n, short(sum), m.Size, short(m.SHA256))
	}
	return nil
}

// publish packs the parts and uploads data then manifest. It returns the
// bytes uploaded (0 when it did not publish); failures are warnings.
func (c *Cache) publish(ctx context.Context, a Artifact, key string) int64 {
	c.mu.Lock()
	push := c.push && !c.down
	c.mu.Unlock()
	if !push {
		return 0
	}
	start := time.Now()
	n, err := c.upload(ctx, a, key)
	if err != nil {
		if ctx.Err() == nil {
			c.logFor(a).Warnf("%s: not published: %v", a.id(), err)
		}
		return 0
	}
	c.logFor(a).Infof("%s: published %s (%s) to %s in %s", a.id(), short(key), humanize.IBytes(uint64(n)), c.where,
		time.Since(start).Round(100*time.Millisecond))
	return n
}

func (c *Cache) upload(ctx context.Context, a Artifact, key string) (int64, error) {
	dir, err := c.stagingDir(a.Parts[0].Path, ".cache-publish-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "artifact.tar.zst"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	p, err := pack(ctx, f, a.Parts)
	if err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	m := manifest{Format: manifestFormat, Stage: a.Recipe.Stage, Name: a.Recipe.Name, Key: key,
		Object: dataName(p.sha256), SHA256: p.sha256, Size: p.size, Unpacked: p.unpacked,
		Created: time.Now().UTC(), Recipe: a.Recipe.String()}
	if err := c.objects.Put(ctx, m.Object, f, p.size); err != nil {
		return 0, c.putFailed(err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return 0, err
	}
	if err := c.objects.Put(ctx, manifestName(m.Stage, key), strings.NewReader(string(b)), int64(len(b))); err != nil {
		return 0, c.putFailed(err)
	}
	return p.size, nil
}

// putFailed stops publishing for the rest of the process: refused
// credentials (read-only keys) get the hint, anything else means the store
// is unreachable.
func (c *Cache) putFailed(err error) error {
	if !errors.Is(err, store.ErrAuth) {
		return c.unreachable(err)
	}
	c.mu.Lock()
	c.push = false
	c.mu.Unlock()
	return fmt.Errorf("%w (set CACHE_PUSH=false when the keys are read-only)", err)
}

// unreachable turns the artifact store off for the rest of the process
// and says so, once; the error it returns is a miss, so the caller builds
// locally.
func (c *Cache) unreachable(err error) error {
	c.mu.Lock()
	c.down = true
	c.mu.Unlock()
	c.Unreachable(c.where, err)
	return fmt.Errorf("%w: %w", store.ErrNotFound, err)
}

// Unreachable says that a shared cache (the artifact store, or the compile
// cache's remote storage, which stops using itself) could not be used: once
// per build, whichever cache fails first, since the build simply goes on
// without them. err must not hold secrets (store and ccache errors never
// do).
func (c *Cache) Unreachable(what string, err error) {
	if c == nil {
		return
	}
	c.mu.Lock()
	said := c.said
	c.said = true
	c.mu.Unlock()
	if said {
		c.log.Debugf("cache %s unreachable too: %v", what, err)
		return
	}
	c.log.Warnf("cache unreachable: %s: %v; building without it for the rest of this build", what, err)
}

func (c *Cache) isDown() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down
}

// Down reports whether the artifact store was found unreachable in this
// process.
func (c *Cache) Down() bool { return c != nil && c.isDown() }
