package alpine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/archive"
	"github.com/threefoldtech/zosbuilder/pkg/download"
)

// apkStatic is the package that ships a static apk, and its path inside it.
const (
	apkStaticPackage = "apk-tools-static"
	apkStaticPath    = "sbin/apk.static"
)

// BootstrapOptions configure FindApk and BootstrapApk.
type BootstrapOptions struct {
	// Source names the mirror whose main repository ships apk-tools-static.
	Source
	// KeysDir holds the trusted Alpine keys (INSTALL_DIR/etc/apk/keys of
	// the extracted minirootfs).
	KeysDir string
	// Dir keeps the verified apk.static between builds, e.g.
	// CACHE_DIR/apk-tools-static.
	Dir     string
	Fetcher *download.Fetcher
	Log     logrus.FieldLogger
	// IgnoreHostApk bootstraps apk.static even when apk is on PATH.
	IgnoreHostApk bool
}

// FindApk returns the apk to run: the host's when apk is on PATH, otherwise
// apk.static bootstrapped from the mirror (BootstrapApk).
func FindApk(ctx context.Context, opt BootstrapOptions) (string, error) {
	if !opt.IgnoreHostApk {
		if p, err := exec.LookPath("apk"); err == nil {
			return p, nil
		}
	}
	return BootstrapApk(ctx, opt)
}

// BootstrapApk returns the path of apk.static from the mirror's
// apk-tools-static package. The package is found through the main
// repository's APKINDEX, whose RSA signature is checked against KeysDir;
// the package's own signature, its control checksum (the index's C:
// field) and its data hash (.PKGINFO datahash) are checked before its
// apk.static is kept in Dir. A verified copy of the same version is reused
// without downloading the package again.
func BootstrapApk(ctx context.Context, opt BootstrapOptions) (string, error) {
	keys, err := LoadKeys(opt.KeysDir)
	if err != nil {
		return "", fmt.Errorf("bootstrap apk: %w", err)
	}
	repo := opt.RepositoryURL("main") + "/" + opt.arch()
	indexURL := repo + "/APKINDEX.tar.gz"
	data, err := opt.Fetcher.Bytes(ctx, indexURL)
	if err != nil {
		return "", fmt.Errorf("bootstrap apk: %w", err)
	}
	entries, err := ReadIndex(data, keys)
	if err != nil {
		return "", fmt.Errorf("bootstrap apk: %s: %w", download.Redact(indexURL), err)
	}
	entry, ok := findEntry(entries, apkStaticPackage)
	if !ok {
		return "", fmt.Errorf("bootstrap apk: %s lists no %s", download.Redact(indexURL), apkStaticPackage)
	}
	name := apkStaticPackage + "-" + entry.Version
	if err := download.CheckName(name); err != nil || strings.ContainsAny(entry.Version, "/\\") {
		return "", fmt.Errorf("bootstrap apk: %s: invalid version %q", download.Redact(indexURL), entry.Version)
	}
	dest := filepath.Join(opt.Dir, name)
	bin := filepath.Join(dest, apkStaticPath)
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		return bin, nil
	}
	pkgURL := repo + "/" + name + ".apk"
	pkgFile, err := opt.Fetcher.File(ctx, pkgURL, "")
	if err != nil {
		return "", fmt.Errorf("bootstrap apk: %w", err)
	}
	pkg, err := os.ReadFile(pkgFile)
	if err != nil {
		return "", fmt.Errorf("bootstrap apk: %w", err)
	}
	payload, err := VerifyPackage(pkg, entry, keys)
	if err != nil {
		// The cached file is bad; drop it so the next run fetches again.
		_ = os.Remove(pkgFile)
		return "", fmt.Errorf("bootstrap apk: %s: %w", download.Redact(pkgURL), err)
	}
	if err := unpack(ctx, payload, dest, opt.Log); err != nil {
		return "", fmt.Errorf("bootstrap apk: %s: %w", name, err)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("bootstrap apk: %s has no %s", name, apkStaticPath)
	}
	return bin, nil
}

func findEntry(entries []IndexEntry, name string) (IndexEntry, bool) {
	for _, e := range entries {
		if e.Name == name {
			return e, true
		}
	}
	return IndexEntry{}, false
}

// unpack extracts a package's data member into dest through a temporary
// directory, so dest exists only complete.
func unpack(ctx context.Context, payload []byte, dest string, log logrus.FieldLogger) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+"-")
	if err != nil {
		return err
	}
	defer RemoveTree(tmp)
	if err := archive.ExtractTar(ctx, bytes.NewReader(payload), tmp, archive.Options{Log: log}); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil && !errors.Is(err, os.ErrExist) {
		// Another build bootstrapped the same version meanwhile: keep it.
		if _, serr := os.Stat(dest); serr != nil {
			return err
		}
	}
	return nil
}
