package config

import "github.com/threefoldtech/zosbuilder/pkg/store"

// RFS holds config/rfs.conf: where flist blobs are uploaded at build time
// and the read-only route written into the flists for the nodes. The file is
// git-ignored because it holds credentials; config/rfs.conf.example is the
// committed template. Secret values never appear in messages.
type RFS struct {
	// S3Config holds the S3 keys, their defaults and documentation (its
	// struct tags), and makes the store and route URLs from them.
	store.S3Config

	UploadManifests bool `key:"UPLOAD_MANIFESTS" default:"false" doc:"upload the .fl manifests to S3_BUCKET/MANIFESTS_SUBPATH after packing"`

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
	c.RFS = r
	return nil
}
