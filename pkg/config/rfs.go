package config

import (
	"path/filepath"
)

// RFS holds config/rfs.conf: where flist blobs are uploaded at build time
// and the read-only route written into the flists for the nodes. The file is
// git-ignored because it holds credentials; config/rfs.conf.example is the
// committed template. Secret values never appear in messages.
type RFS struct {
	S3Endpoint  string `key:"S3_ENDPOINT" check:"httpurl" required:"true" doc:"S3 endpoint for uploads, scheme://host:port (e.g. http://s3.example.com:3900)"`
	S3Region    string `key:"S3_REGION" default:"garage" doc:"S3 region of the upload endpoint"`
	S3Bucket    string `key:"S3_BUCKET" required:"true" check:"tag" doc:"bucket holding the blobs and the manifests"`
	S3Prefix    string `key:"S3_PREFIX" doc:"key prefix of the blobs inside the bucket (e.g. zos/blobs)"`
	S3AccessKey string `key:"S3_ACCESS_KEY" required:"true" secret:"true" doc:"write access key (build time only)"`
	S3SecretKey string `key:"S3_SECRET_KEY" required:"true" secret:"true" doc:"write secret key (build time only, never written to a flist)"`

	ReadAccessKey string `key:"READ_ACCESS_KEY" secret:"true" doc:"read-only access key written into the flists' route (empty: anonymous)"`
	ReadSecretKey string `key:"READ_SECRET_KEY" secret:"true" doc:"read-only secret written into the flists' route"`
	RouteEndpoint string `key:"ROUTE_ENDPOINT" check:"httpurl" doc:"endpoint nodes read blobs from; default S3_ENDPOINT"`
	RoutePath     string `key:"ROUTE_PATH" default:"/blobs" doc:"bucket/prefix path of the blobs as seen through ROUTE_ENDPOINT"`
	RouteRegion   string `key:"ROUTE_REGION" default:"garage" doc:"region written into the route"`

	ManifestsSubpath string `key:"MANIFESTS_SUBPATH" default:"manifests" doc:"key prefix of the .fl manifests in S3_BUCKET"`
	UploadManifests  bool   `key:"UPLOAD_MANIFESTS" default:"false" doc:"upload the .fl manifests to S3_BUCKET/MANIFESTS_SUBPATH after packing"`

	// File is where the settings came from (relative to the project root).
	File string
}

// loadRFS reads rfs.conf when it exists. Without it RFS stays nil.
func (c *Config) loadRFS(env map[string]string, environ []string) error {
	path := c.Path(RFSConfFile)
	if !fileExists(path) {
		return nil
	}
	keys := keysOf(RFS{})
	raw, err := c.readShellFiles([]string{path}, keys, env, environ, true)
	if err != nil {
		return err
	}
	r := &RFS{File: c.rel(path)}
	if err := c.apply(r, keys, raw, false); err != nil {
		return err
	}
	if r.RouteEndpoint == "" {
		r.RouteEndpoint = r.S3Endpoint
	}
	r.RoutePath = "/" + filepath.Clean("/" + r.RoutePath)[1:]
	c.RFS = r
	return nil
}
