// Package alpine builds the Alpine base of the image: it fetches and
// extracts the minirootfs, configures it for Zero-OS, and installs packages
// into it with apk (the host's, or apk.static bootstrapped from the mirror
// and verified against the Alpine keys), unprivileged through a user
// namespace when not root.
package alpine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/archive"
	"github.com/threefoldtech/zosbuilder/pkg/download"
)

// Source names an Alpine release on a mirror.
type Source struct {
	// Mirror is ALPINE_MIRROR, e.g. https://dl-cdn.alpinelinux.org/alpine
	// (http, https or file URL).
	Mirror string
	// Version is ALPINE_VERSION, the release branch ("3.22" or "edge").
	Version string
	// Arch is ALPINE_ARCH; empty means x86_64.
	Arch string
}

func (s Source) arch() string {
	if s.Arch == "" {
		return "x86_64"
	}
	return s.Arch
}

// branchURL is the mirror's directory of the release branch: .../v3.22.
func (s Source) branchURL() string {
	v := s.Version
	if v != "edge" && !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	return strings.TrimRight(s.Mirror, "/") + "/" + v
}

// RepositoryURL is the URL of a repository (main, community) of the branch,
// as written in /etc/apk/repositories.
func (s Source) RepositoryURL(repo string) string { return s.branchURL() + "/" + repo }

// ReleasesURL is the directory holding latest-releases.yaml and the release
// tarballs.
func (s Source) ReleasesURL() string { return s.branchURL() + "/releases/" + s.arch() }

// Minirootfs is one minirootfs release tarball.
type Minirootfs struct {
	Version string // e.g. 3.22.1
	File    string // alpine-minirootfs-3.22.1-x86_64.tar.gz
	URL     string
	SHA256  string
}

// release is one entry of latest-releases.yaml.
type release struct {
	Flavor  string `yaml:"flavor"`
	Arch    string `yaml:"arch"`
	Version string `yaml:"version"`
	File    string `yaml:"file"`
	SHA256  string `yaml:"sha256"`
}

// ResolveMinirootfs finds the minirootfs to use. With version and sha256
// set (ALPINE_MINIROOTFS_VERSION and ALPINE_MINIROOTFS_SHA256) nothing is
// fetched; with only version set the checksum is read from the .sha256 file
// beside the tarball; with neither, latest-releases.yaml names both.
func ResolveMinirootfs(ctx context.Context, f *download.Fetcher, src Source, version, sha256 string) (Minirootfs, error) {
	if version != "" {
		m := Minirootfs{Version: version, File: fmt.Sprintf("alpine-minirootfs-%s-%s.tar.gz", version, src.arch()), SHA256: sha256}
		m.URL = src.ReleasesURL() + "/" + m.File
		if m.SHA256 != "" {
			return m, nil
		}
		sum, err := readSHA256File(ctx, f, m.URL+".sha256", m.File)
		if err != nil {
			return Minirootfs{}, err
		}
		m.SHA256 = sum
		return m, nil
	}
	index := src.ReleasesURL() + "/latest-releases.yaml"
	b, err := f.Bytes(ctx, index)
	if err != nil {
		return Minirootfs{}, err
	}
	var releases []release
	if err := yaml.Unmarshal(b, &releases); err != nil {
		return Minirootfs{}, fmt.Errorf("parse %s: %w", redact.MaskURL(index), err)
	}
	for _, r := range releases {
		if r.Flavor != "alpine-minirootfs" || (r.Arch != "" && r.Arch != src.arch()) {
			continue
		}
		if r.Version == "" {
			return Minirootfs{}, fmt.Errorf("%s: alpine-minirootfs entry without a version", redact.MaskURL(index))
		}
		if err := download.CheckName(r.File); err != nil {
			return Minirootfs{}, fmt.Errorf("%s: alpine-minirootfs entry: file: %w", redact.MaskURL(index), err)
		}
		m := Minirootfs{Version: r.Version, File: r.File, URL: src.ReleasesURL() + "/" + r.File, SHA256: r.SHA256}
		if m.SHA256 == "" {
			if m.SHA256, err = readSHA256File(ctx, f, m.URL+".sha256", m.File); err != nil {
				return Minirootfs{}, err
			}
		}
		return m, nil
	}
	return Minirootfs{}, fmt.Errorf("%s: no alpine-minirootfs release for %s", redact.MaskURL(index), src.arch())
}

// readSHA256File reads a sha256sum-style file ("HEX  NAME") and returns the
// hash listed for name (or the only hash when the file has one line).
func readSHA256File(ctx context.Context, f *download.Fetcher, url, name string) (string, error) {
	b, err := f.Bytes(ctx, url)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		fields := strings.Fields(l)
		if len(fields) == 0 {
			continue
		}
		if len(fields) == 1 && len(lines) == 1 || len(fields) >= 2 && strings.TrimPrefix(fields[1], "*") == name {
			return strings.ToLower(fields[0]), nil
		}
	}
	return "", fmt.Errorf("%s: no sha256 for %s", redact.MaskURL(url), name)
}

// ExtractOptions configure Extract.
type ExtractOptions struct {
	Source
	// MinirootfsVersion and MinirootfsSHA256 pin a release
	// (ALPINE_MINIROOTFS_VERSION, ALPINE_MINIROOTFS_SHA256).
	MinirootfsVersion string
	MinirootfsSHA256  string
	// InstallDir is the root to create (INSTALL_DIR); whatever is there is
	// replaced, but only once the new tree is complete.
	InstallDir string
	Fetcher    *download.Fetcher
	Log        logrus.FieldLogger
}

// Extract downloads the minirootfs and extracts it into InstallDir. The
// tarball is extracted next to InstallDir and swapped in when complete, so
// an interrupted or failed run leaves the previous tree (or none), never a
// half one, and a rerun starts afresh.
func Extract(ctx context.Context, opt ExtractOptions) (Minirootfs, error) {
	if opt.InstallDir == "" {
		return Minirootfs{}, errors.New("alpine extract: no install directory")
	}
	m, err := ResolveMinirootfs(ctx, opt.Fetcher, opt.Source, opt.MinirootfsVersion, opt.MinirootfsSHA256)
	if err != nil {
		return Minirootfs{}, fmt.Errorf("alpine extract: %w", err)
	}
	tarball, err := opt.Fetcher.File(ctx, m.URL, m.SHA256)
	if err != nil {
		return Minirootfs{}, fmt.Errorf("alpine extract: %w", err)
	}
	dir := filepath.Clean(opt.InstallDir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Minirootfs{}, fmt.Errorf("alpine extract: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".extract-")
	if err != nil {
		return Minirootfs{}, fmt.Errorf("alpine extract: %w", err)
	}
	defer fsutil.RemoveAll(tmp) // a no-op once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Minirootfs{}, fmt.Errorf("alpine extract: %w", err)
	}
	if err := archive.ExtractFile(ctx, tarball, tmp, archive.Options{Log: opt.Log}); err != nil {
		return Minirootfs{}, fmt.Errorf("alpine extract %s: %w", m.File, err)
	}
	if err := fsutil.ReplaceDir(tmp, dir); err != nil {
		return Minirootfs{}, fmt.Errorf("alpine extract: %w", err)
	}
	return m, nil
}

// readAllLimited reads at most n bytes of r; more is an error.
func readAllLimited(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > n {
		return nil, fmt.Errorf("larger than %d bytes", n)
	}
	return b, nil
}
