package store

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	pathpkg "path"
	"path/filepath"
	"strings"
)

// S3Config holds the S3 settings of config/rfs.conf. The pack-time store
// writes blobs with the write credentials; the runtime route written into
// the flist points nodes at a read-only gateway.
//
// The tags describe the rfs.conf keys (name, default, check, documentation)
// for pkg/config, which reads the file into this struct: they are the only
// place the defaults are written. The methods take the values as they are:
// an empty RouteRegion is a route without a region, an empty
// ManifestsSubpath the bucket's top.
type S3Config struct {
	Endpoint  string `key:"S3_ENDPOINT" check:"httpurl" required:"true" doc:"S3 endpoint for uploads, scheme://host:port (e.g. http://s3.example.com:3900)"`
	Region    string `key:"S3_REGION" default:"garage" doc:"S3 region of the upload endpoint"`
	Bucket    string `key:"S3_BUCKET" required:"true" check:"tag" doc:"bucket holding the blobs and the manifests"`
	Prefix    string `key:"S3_PREFIX" doc:"key prefix of the blobs inside the bucket (e.g. zos/blobs)"`
	AccessKey string `key:"S3_ACCESS_KEY" required:"true" secret:"true" doc:"write access key (build time only)"`
	SecretKey string `key:"S3_SECRET_KEY" required:"true" secret:"true" doc:"write secret key (build time only, never written to a flist)"`

	ReadAccessKey string `key:"READ_ACCESS_KEY" secret:"true" doc:"read-only access key written into the flists' route (empty: anonymous)"`
	ReadSecretKey string `key:"READ_SECRET_KEY" secret:"true" doc:"read-only secret written into the flists' route"`
	// RouteEndpoint empty means Endpoint.
	RouteEndpoint string `key:"ROUTE_ENDPOINT" check:"httpurl" doc:"endpoint nodes read blobs from; default S3_ENDPOINT"`
	RoutePath     string `key:"ROUTE_PATH" default:"/blobs" doc:"bucket/prefix path of the blobs as seen through ROUTE_ENDPOINT"`
	RouteRegion   string `key:"ROUTE_REGION" default:"garage" doc:"region written into the route"`

	ManifestsSubpath string `key:"MANIFESTS_SUBPATH" default:"manifests" doc:"key prefix of the .fl manifests in S3_BUCKET"`
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
	path := strings.TrimPrefix(pathpkg.Clean("/"+c.RoutePath), "/")
	if path == "" {
		return "", fmt.Errorf("ROUTE_PATH %q: want a path such as /blobs: %w", c.RoutePath, ErrInvalidURL)
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
	return s3URL(scheme, hostPort, user, path, c.RouteRegion), nil
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
	key := filepath.Base(path)
	if sub := strings.Trim(c.ManifestsSubpath, "/"); sub != "" {
		key = sub + "/" + key
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
	if err := s.put(ctx, key, f, fi.Size()); err != nil {
		return "", fmt.Errorf("upload manifest %s: %w", path, err)
	}
	return t.endpointForErrors + "/" + t.bucket + "/" + key, nil
}
