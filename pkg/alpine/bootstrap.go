package alpine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/redact"
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
	repo := opt.RepositoryArchURL("main")
	entries, err := FetchIndex(ctx, opt.Fetcher, repo, keys)
	if err != nil {
		return "", fmt.Errorf("bootstrap apk: %w", err)
	}
	entry, ok := findEntry(entries, apkStaticPackage)
	if !ok {
		return "", fmt.Errorf("bootstrap apk: %s lists no %s", redact.MaskURL(repo+"/APKINDEX.tar.gz"), apkStaticPackage)
	}
	name := apkStaticPackage + "-" + entry.Version
	if err := download.CheckName(name); err != nil {
		return "", fmt.Errorf("bootstrap apk: %s: invalid version %q", redact.MaskURL(repo+"/APKINDEX.tar.gz"), entry.Version)
	}
	pkgURL, err := entry.URL()
	if err != nil {
		return "", fmt.Errorf("bootstrap apk: %s: %w", redact.MaskURL(repo+"/APKINDEX.tar.gz"), err)
	}
	dest := filepath.Join(opt.Dir, name)
	bin := filepath.Join(dest, apkStaticPath)
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		return bin, nil
	}
	pkgFile, err := opt.Fetcher.File(ctx, pkgURL, "")
	if err != nil {
		return "", fmt.Errorf("bootstrap apk: %w", err)
	}
	if err := UnpackPackage(ctx, pkgFile, entry, keys, dest, PackageExtractOptions{Log: opt.Log}); err != nil {
		// The cached file may be bad; drop it so the next run fetches again.
		_ = opt.Fetcher.Discard(pkgFile)
		return "", fmt.Errorf("bootstrap apk: %s: %w", redact.MaskURL(pkgURL), err)
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
