package store

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Defaults of the rfs.conf keys that have one.
const (
	DefaultRoutePath        = "/blobs"
	DefaultRouteRegion      = "garage"
	DefaultManifestsSubpath = "manifests"
)

// S3Config holds the S3 settings of config/rfs.conf as plain values. The
// pack-time store writes blobs with the write credentials; the runtime route
// written into the flist points nodes at a read-only gateway.
type S3Config struct {
	Endpoint  string // S3_ENDPOINT: http(s)://host[:port]
	Region    string // S3_REGION
	Bucket    string // S3_BUCKET
	Prefix    string // S3_PREFIX: key prefix of the blobs inside the bucket
	AccessKey string // S3_ACCESS_KEY (write)
	SecretKey string // S3_SECRET_KEY (write)

	ReadAccessKey string // READ_ACCESS_KEY: embedded in the runtime route
	ReadSecretKey string // READ_SECRET_KEY
	RouteEndpoint string // ROUTE_ENDPOINT, default Endpoint
	RoutePath     string // ROUTE_PATH, default /blobs (the gateway's blob route, not S3_PREFIX)
	RouteRegion   string // ROUTE_REGION, default garage

	ManifestsSubpath string // MANIFESTS_SUBPATH, default manifests
}

// endpoint takes an http(s)://host[:port] value apart. The port is made
// explicit because rfs refuses s3 URLs without one.
func endpoint(key, value string) (scheme, hostPort string, err error) {
	u, err := url.Parse(value)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", "", fmt.Errorf("%s %q: want http(s)://host[:port]: %w", key, value, ErrInvalidURL)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", "", fmt.Errorf("%s %q: want only http(s)://host[:port], no user, path or query: %w", key, value, ErrInvalidURL)
	}
	scheme, port := "s3", "80"
	if u.Scheme == "https" {
		scheme, port = "s3s", "443"
	}
	if p := u.Port(); p != "" {
		port = p
	}
	return scheme, net.JoinHostPort(u.Hostname(), port), nil
}

func s3URL(scheme, hostPort string, user *url.Userinfo, path, region string) string {
	u := url.URL{Scheme: scheme, User: user, Host: hostPort, Path: "/" + path}
	if region != "" {
		u.RawQuery = url.Values{"region": {region}}.Encode()
	}
	return u.String()
}

// PackURL is the s3:// store URL blobs are uploaded to:
// s3://S3_ACCESS_KEY:S3_SECRET_KEY@host:port/S3_BUCKET[/S3_PREFIX]?region=S3_REGION
// (s3s:// when S3_ENDPOINT is https).
func (c S3Config) PackURL() (string, error) {
	scheme, hostPort, err := endpoint("S3_ENDPOINT", c.Endpoint)
	if err != nil {
		return "", err
	}
	bucket := strings.Trim(c.Bucket, "/")
	if bucket == "" || strings.Contains(bucket, "/") {
		return "", fmt.Errorf("S3_BUCKET %q: want a bucket name: %w", c.Bucket, ErrInvalidURL)
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return "", fmt.Errorf("S3_ACCESS_KEY and S3_SECRET_KEY must both be set to upload blobs: %w", ErrInvalidURL)
	}
	path := bucket
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		path += "/" + p
	}
	return s3URL(scheme, hostPort, url.UserPassword(c.AccessKey, c.SecretKey), path, c.Region), nil
}

// RouteURL is the runtime route written into flists instead of the pack-time
// store: s3://READ_ACCESS_KEY:READ_SECRET_KEY@route-host:port/ROUTE_PATH?region=ROUTE_REGION.
// Without read credentials the route is anonymous. rfs takes the user info
// of a route verbatim (it does not percent-decode it), so read credentials
// that would need escaping are rejected.
func (c S3Config) RouteURL() (string, error) {
	ep, key := c.RouteEndpoint, "ROUTE_ENDPOINT"
	if ep == "" {
		ep, key = c.Endpoint, "S3_ENDPOINT"
	}
	scheme, hostPort, err := endpoint(key, ep)
	if err != nil {
		return "", err
	}
	path := strings.Trim(c.RoutePath, "/")
	if c.RoutePath == "" {
		path = strings.Trim(DefaultRoutePath, "/")
	}
	if path == "" {
		return "", fmt.Errorf("ROUTE_PATH %q: want a path such as /blobs: %w", c.RoutePath, ErrInvalidURL)
	}
	region := c.RouteRegion
	if region == "" {
		region = DefaultRouteRegion
	}
	var user *url.Userinfo
	switch {
	case c.ReadAccessKey == "" && c.ReadSecretKey == "":
	case c.ReadAccessKey == "" || c.ReadSecretKey == "":
		return "", fmt.Errorf("READ_ACCESS_KEY and READ_SECRET_KEY must be set together: %w", ErrInvalidURL)
	default:
		user = url.UserPassword(c.ReadAccessKey, c.ReadSecretKey)
		if user.String() != c.ReadAccessKey+":"+c.ReadSecretKey {
			return "", fmt.Errorf("READ_ACCESS_KEY or READ_SECRET_KEY contains characters that need escaping in a URL, "+
				"which rfs does not decode: %w", ErrInvalidURL)
		}
	}
	return s3URL(scheme, hostPort, user, path, region), nil
}

// UploadManifest uploads the file at path (an .fl manifest) with the write
// credentials to S3_BUCKET/MANIFESTS_SUBPATH/<base name> and returns the
// object's location (endpoint/bucket/key, no credentials).
func (c S3Config) UploadManifest(ctx context.Context, path string) (string, error) {
	packURL, err := c.PackURL()
	if err != nil {
		return "", err
	}
	t, err := parseS3(packURL)
	if err != nil {
		return "", err
	}
	client, err := t.client(Options{})
	if err != nil {
		return "", err
	}
	sub := strings.Trim(c.ManifestsSubpath, "/")
	if sub == "" {
		sub = DefaultManifestsSubpath
	}
	s := &S3{client: client, bucket: t.bucket, endpoint: t.endpointForErrors, secret: t.secret}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("upload manifest: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("upload manifest: %w", err)
	}
	key := sub + "/" + filepath.Base(path)
	if err := s.put(ctx, key, f, fi.Size()); err != nil {
		return "", fmt.Errorf("upload manifest %s: %w", path, err)
	}
	return t.endpointForErrors + "/" + t.bucket + "/" + key, nil
}
