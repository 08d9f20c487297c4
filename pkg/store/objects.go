package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
)

// Objects is a store of named objects of any size, such as the stage
// artifacts of the build cache (tens to hundreds of MB each), next to the
// content-addressed blob stores above: a local or shared directory (dir://)
// or an S3 bucket (s3://, s3s://). Implementations are safe for concurrent
// use. Names are slash-separated paths of [A-Za-z0-9._-] segments that do not
// start with a dot (see CheckObjectName).
type Objects interface {
	// Put stores r under name. Readers see the previous object or the new
	// one, never a part. size is r's length, or -1 when unknown (the
	// object is then streamed in parts).
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Get opens the object for reading, or fails wrapping ErrNotFound.
	Get(ctx context.Context, name string) (io.ReadCloser, ObjectInfo, error)
	// Stat describes the object, or fails wrapping ErrNotFound.
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	// List returns the objects whose names start with prefix, by name.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes the object; a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// String names the store for messages, without credentials.
	String() string
}

// ObjectInfo describes one object.
type ObjectInfo struct {
	Name     string
	Size     int64
	Modified time.Time
}

// ObjectOptions configure OpenObjects.
type ObjectOptions struct {
	// Timeouts bound every network wait of an S3 store; zero fields take
	// httpclient's defaults.
	Timeouts httpclient.Timeouts
	// PartSize is the S3 multipart part size; 0 means 16 MiB. A part is
	// buffered in memory while an object of unknown size is streamed.
	PartSize uint64
}

const defaultPartSize = 16 << 20

// OpenObjects returns the object store a URL names:
//
//	dir:///abs/path
//	s3://KEY:SECRET@HOST:PORT/BUCKET[/PREFIX][?region=R]   (s3s:// for TLS)
func OpenObjects(rawURL string, opt ObjectOptions) (Objects, error) {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("object store %q: missing scheme: %w", redact.MaskURL(rawURL), ErrInvalidURL)
	}
	switch strings.ToLower(scheme) {
	case "dir":
		u, err := url.Parse(rawURL)
		if err != nil || u.Host != "" || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("object store %s: dir:// needs an absolute path (dir:///abs/path): %w", redact.MaskURL(rawURL), ErrInvalidURL)
		}
		return NewDirObjects(u.Path), nil
	case "s3", "s3s":
		t, err := parseS3(rawURL)
		if err != nil {
			return nil, err
		}
		c, err := t.client(Options{Timeouts: opt.Timeouts})
		if err != nil {
			return nil, err
		}
		part := opt.PartSize
		if part == 0 {
			part = defaultPartSize
		}
		s := &S3{client: c, bucket: t.bucket, prefix: t.prefix, url: rawURL, endpoint: t.endpointForErrors, secret: t.secret}
		return &s3Objects{s: s, partSize: part, where: redact.MaskURL(rawURL)}, nil
	}
	return nil, fmt.Errorf("object store %s: unknown scheme %q (want dir://, s3:// or s3s://): %w", redact.MaskURL(rawURL), scheme, ErrNotSupported)
}

var segmentRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

// CheckObjectName accepts slash-separated segments of letters, digits, '.',
// '_' and '-', none starting with a dot (so no "..", and the dir store's
// temporary files never collide with an object), at most 512 bytes.
func CheckObjectName(name string) error {
	if name == "" || len(name) > 512 {
		return fmt.Errorf("object name %q: want 1 to 512 bytes: %w", name, ErrInvalidURL)
	}
	for _, seg := range strings.Split(name, "/") {
		if !segmentRe.MatchString(seg) {
			return fmt.Errorf("object name %q: segment %q must be letters, digits, '.', '_' or '-' and not start with a dot: %w", name, seg, ErrInvalidURL)
		}
	}
	return nil
}

// checkPrefix accepts "" and names with an optional trailing slash.
func checkPrefix(prefix string) error {
	if p := strings.TrimSuffix(prefix, "/"); p != "" {
		return CheckObjectName(p)
	}
	return nil
}

// DirObjects keeps objects as files under a directory, written to a
// temporary name and renamed. Every access goes through an os.Root opened on
// the directory, so no name, and no symbolic link planted inside, can reach
// a file outside it.
type DirObjects struct{ root string }

// NewDirObjects returns the object store in dir (created on the first Put).
func NewDirObjects(dir string) *DirObjects { return &DirObjects{root: filepath.Clean(dir)} }

// String implements Objects.
func (d *DirObjects) String() string { return "dir://" + d.root }

func (d *DirObjects) open(create bool) (*os.Root, error) {
	if create {
		if err := os.MkdirAll(d.root, 0o755); err != nil {
			return nil, fmt.Errorf("object store %s: %w", d, err)
		}
	}
	r, err := os.OpenRoot(d.root)
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", d, err)
	}
	return r, nil
}

// Put implements Objects.
func (d *DirObjects) Put(_ context.Context, name string, r io.Reader, size int64) error {
	if err := CheckObjectName(name); err != nil {
		return err
	}
	root, err := d.open(true)
	if err != nil {
		return err
	}
	defer root.Close()
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("object store %s: put %s: %w", d, name, err)
		}
	}
	tmp := path.Join(path.Dir(name), ".tmp-"+randomHex())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("object store %s: put %s: %w", d, name, err)
	}
	n, werr := io.Copy(f, r)
	if werr == nil && size >= 0 && n != size {
		werr = fmt.Errorf("got %d bytes, want %d", n, size)
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("object store %s: put %s: %w", d, name, err)
	}
	if err := root.Rename(tmp, name); err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("object store %s: put %s: %w", d, name, err)
	}
	return nil
}

// Get implements Objects.
func (d *DirObjects) Get(_ context.Context, name string) (io.ReadCloser, ObjectInfo, error) {
	if err := CheckObjectName(name); err != nil {
		return nil, ObjectInfo{}, err
	}
	root, err := d.open(false)
	if err != nil {
		return nil, ObjectInfo{}, d.notFound(name, err)
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		return nil, ObjectInfo{}, d.notFound(name, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err != nil {
		f.Close()
		return nil, ObjectInfo{}, d.notFound(name, err)
	}
	return f, ObjectInfo{Name: name, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// Stat implements Objects.
func (d *DirObjects) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	f, info, err := d.Get(ctx, name)
	if err != nil {
		return ObjectInfo{}, err
	}
	f.Close()
	return info, nil
}

func (d *DirObjects) notFound(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("object store %s: %s: %w", d, name, ErrNotFound)
	}
	return fmt.Errorf("object store %s: %s: %w", d, name, err)
}

// List implements Objects. It walks only the folder the prefix names.
func (d *DirObjects) List(_ context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	root, err := d.open(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer root.Close()
	start := "."
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		start = prefix[:i]
	}
	var out []ObjectInfo
	err = fs.WalkDir(root.FS(), start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		if strings.HasPrefix(e.Name(), ".") && p != "." {
			if e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		out = append(out, ObjectInfo{Name: p, Size: fi.Size(), Modified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("object store %s: list %s: %w", d, prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete implements Objects.
func (d *DirObjects) Delete(_ context.Context, name string) error {
	if err := CheckObjectName(name); err != nil {
		return err
	}
	root, err := d.open(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("object store %s: delete %s: %w", d, name, err)
	}
	return nil
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// s3Objects keeps objects in a bucket under the URL's prefix. S3 makes an
// upload visible only when it is complete, multipart ones included.
type s3Objects struct {
	s        *S3
	partSize uint64
	where    string
}

func (o *s3Objects) String() string { return o.where }

// Put implements Objects.
func (o *s3Objects) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := CheckObjectName(name); err != nil {
		return err
	}
	key := o.s.prefix + name
	_, err := o.s.client.PutObject(ctx, o.s.bucket, key, r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    o.partSize,
		// Callers verify content with their own sha256; minio-go's would
		// be a second pass over hundreds of MB.
		DisableContentSha256: true,
	})
	if err != nil {
		return o.s.wrap("put", key, err)
	}
	return nil
}

// Get implements Objects.
func (o *s3Objects) Get(ctx context.Context, name string) (io.ReadCloser, ObjectInfo, error) {
	if err := CheckObjectName(name); err != nil {
		return nil, ObjectInfo{}, err
	}
	key := o.s.prefix + name
	obj, err := o.s.client.GetObject(ctx, o.s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, ObjectInfo{}, o.s.wrap("get", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, ObjectInfo{}, o.s.wrap("get", key, err)
	}
	return obj, ObjectInfo{Name: name, Size: st.Size, Modified: st.LastModified}, nil
}

// Stat implements Objects.
func (o *s3Objects) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	if err := CheckObjectName(name); err != nil {
		return ObjectInfo{}, err
	}
	key := o.s.prefix + name
	st, err := o.s.client.StatObject(ctx, o.s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, o.s.wrap("stat", key, err)
	}
	return ObjectInfo{Name: name, Size: st.Size, Modified: st.LastModified}, nil
}

// List implements Objects.
func (o *s3Objects) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	var out []ObjectInfo
	for obj := range o.s.client.ListObjects(ctx, o.s.bucket, minio.ListObjectsOptions{Prefix: o.s.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, o.s.wrap("list", o.s.prefix+prefix, obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, o.s.prefix)
		if CheckObjectName(name) != nil {
			continue // not written by this package
		}
		out = append(out, ObjectInfo{Name: name, Size: obj.Size, Modified: obj.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete implements Objects.
func (o *s3Objects) Delete(ctx context.Context, name string) error {
	if err := CheckObjectName(name); err != nil {
		return err
	}
	key := o.s.prefix + name
	if err := o.s.client.RemoveObject(ctx, o.s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		err = o.s.wrap("delete", key, err)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}
