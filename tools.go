//go:build tools

// Package tools pins the project's dependencies while the packages that use
// them are being written; it is never built.
package tools

import (
	_ "github.com/golang/snappy"
	_ "github.com/hanwen/go-fuse/v2/fs"
	_ "github.com/magefile/mage/mage"
	_ "github.com/magefile/mage/mg"
	_ "github.com/minio/minio-go/v7"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/sirupsen/logrus"
	_ "github.com/u-root/u-root/pkg/cpio"
	_ "github.com/ulikunitz/xz"
	_ "golang.org/x/crypto/blake2b"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
	_ "gopkg.in/yaml.v3"
	_ "modernc.org/sqlite"
	_ "mvdan.cc/sh/v3/syntax"
	_ "mvdan.cc/sh/v3/expand"
)
