package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
)

// defaultRegion is used when an s3:// URL has no ?region=: minio-go would
// otherwise ask the server for the bucket location before every first request.
const defaultRegion = "us-east-1"

// S3 is a store in an S3 bucket, addressed path-style. Blob objects are named
// [PREFIX/]<hex>.
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or "a/b/" (with the trailing slash)
	url      string // as configured, credentials included
	endpoint string // scheme://host:port, for messages
	secret   string // scrubbed from any error text
}

// s3Target is an s3:// URL taken apart.
type s3Target struct {
	secure            bool
	hostPort          string
	access, secret    string
	bucket, prefix    string
	region            string
	redacted, rawURL  string
	endpointForErrors string
}

func parseS3(rawURL string) (s3Target, error) {
	red := redact.MaskURL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		return s3Target{}, fmt.Errorf("store %s: %w", red, ErrInvalidURL)
	}
	t := s3Target{secure: strings.EqualFold(u.Scheme, "s3s"), redacted: red, rawURL: rawURL}
	if u.Hostname() == "" || u.Port() == "" {
		// rfs requires the port too ("port not found"), so an flist routed
		// to such a URL would not mount on a node.
		return t, fmt.Errorf("store %s: s3 URL needs HOST:PORT: %w", red, ErrInvalidURL)
	}
	t.hostPort = u.Host
	if u.User != nil {
		t.access = u.User.Username()
		t.secret, _ = u.User.Password()
	}
	path := strings.Trim(u.Path, "/")
	t.bucket, t.prefix, _ = strings.Cut(path, "/")
	if t.bucket == "" {
		return t, fmt.Errorf("store %s: s3 URL needs a bucket (s3://KEY:SECRET@HOST:PORT/BUCKET): %w", red, ErrInvalidURL)
	}
	if t.prefix != "" {
		t.prefix = strings.Trim(t.prefix, "/") + "/"
	}
	t.region = u.Query().Get("region")
	scheme := "http"
	if t.secure {
		scheme = "https"
	}
	t.endpointForErrors = scheme + "://" + t.hostPort
	return t, nil
}

func (t s3Target) client(opt Options) (*minio.Client, error) {
	region := t.region
	if region == "" {
		region = defaultRegion
	}
	// Pack uploads many small objects in parallel; keep their connections.
	tr := httpclient.NewTransport(opt.transport(64))
	c, err := minio.New(t.hostPort, &minio.Options{
		Creds:        credentials.NewStaticV4(t.access, t.secret, ""),
		Secure:       t.secure,
		Region:       region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    tr,
		// Pack retries with its own backoff; minio-go's ten silent retries
		// would turn a dead server into minutes of waiting per blob.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", t.redacted, scrub(err, t.secret))
	}
	return c, nil
}

func openS3(rawURL string, opt Options) (*S3, error) {
	t, err := parseS3(rawURL)
	if err != nil {
		return nil, err
	}
	if opt.Policy != nil {
		host, _, _ := net.SplitHostPort(t.hostPort)
		if err := opt.Policy.checkHost(host); err != nil {
			return nil, fmt.Errorf("store %s: %w", t.redacted, err)
		}
	}
	c, err := t.client(opt)
	if err != nil {
		return nil, err
	}
	return &S3{client: c, bucket: t.bucket, prefix: t.prefix, url: rawURL,
		endpoint: t.endpointForErrors, secret: t.secret}, nil
}

func (s *S3) object(id []byte) string { return s.prefix + Hex(id) }

// Get implements Store.
func (s *S3) Get(ctx context.Context, id []byte) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	name := s.object(id)
	obj, err := s.client.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap("get", name, err)
	}
	defer obj.Close()
	b, err := readBlob(obj, -1)
	if errors.Is(err, ErrTooLarge) {
		return nil, fmt.Errorf("s3 get %s/%s/%s: %w", s.endpoint, s.bucket, name, err)
	}
	if err != nil {
		return nil, s.wrap("get", name, err)
	}
	return b, nil
}

// Exists implements Store with a HEAD request; a missing object is (false, nil).
func (s *S3) Exists(ctx context.Context, id []byte) (bool, error) {
	if err := checkID(id); err != nil {
		return false, err
	}
	name := s.object(id)
	_, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	err = s.wrap("stat", name, err)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return false, err
}

// Set implements Store.
func (s *S3) Set(ctx context.Context, id, blob []byte) error {
	if err := checkID(id); err != nil {
		return err
	}
	return s.put(ctx, s.object(id), bytes.NewReader(blob), int64(len(blob)))
}

func (s *S3) put(ctx context.Context, name string, r io.Reader, size int64) error {
	_, err := s.client.PutObject(ctx, s.bucket, name, r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		// The blob id already is a hash of the content; skip minio-go's
		// extra checksum and payload hashing, which would cost a SHA-256
		// pass over every blob.
		DisableContentSha256: true,
		DisableMultipart:     true,
	})
	if err != nil {
		return s.wrap("put", name, err)
	}
	return nil
}

// Routes implements Store.
func (s *S3) Routes() []Route { return []Route{{Start: 0, End: 255, URL: s.url}} }

// wrap turns a minio-go error into one that names the operation and the
// object (never the credentials) and wraps the matching sentinel.
func (s *S3) wrap(op, name string, err error) error {
	where := s.endpoint + "/" + s.bucket + "/" + name
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3 %s %s: %w", op, where, err)
	}
	resp := minio.ToErrorResponse(err)
	if resp.Code == "" {
		// Not an S3 answer: a network error, which carries the request URL
		// but never the signing secret; scrub it anyway.
		return fmt.Errorf("s3 %s %s: %w", op, where, scrub(err, s.secret))
	}
	var sentinel error
	switch resp.Code {
	case "NoSuchKey", "NotFound":
		sentinel = ErrNotFound
	case "NoSuchBucket":
		sentinel = ErrNoBucket
		where = s.endpoint + "/" + s.bucket
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
		"ExpiredToken", "AuthorizationHeaderMalformed", "MissingSecurityHeader", "AllAccessDisabled",
		"XAdminUserNotFound": // versitygw's answer to an unknown access key
		sentinel = ErrAuth
	}
	msg := scrubString(resp.Message, s.secret)
	if sentinel == nil {
		return fmt.Errorf("s3 %s %s: %s (HTTP %d): %s", op, where, resp.Code, resp.StatusCode, msg)
	}
	if sentinel == ErrAuth {
		return fmt.Errorf("s3 %s %s: %s: %s (check the access key and secret in the store URL): %w",
			op, where, resp.Code, msg, ErrAuth)
	}
	return fmt.Errorf("s3 %s %s: %s: %w", op, where, resp.Code, sentinel)
}

// scrubbed hides a secret in an error's text while keeping the chain for
// errors.Is and errors.As.
type scrubbed struct {
	err    error
	secret string
}

func (e scrubbed) Error() string { return scrubString(e.err.Error(), e.secret) }
func (e scrubbed) Unwrap() error { return e.err }

func scrub(err error, secret string) error {
	if err == nil || len(secret) < minScrub {
		return err
	}
	return scrubbed{err: err, secret: secret}
}

// minScrub is the shortest secret that is searched for in messages; shorter
// ones would match ordinary words and garble the text.
const minScrub = 6

func scrubString(s, secret string) string {
	if len(secret) < minScrub {
		return s
	}
	return strings.ReplaceAll(s, secret, "***")
}
