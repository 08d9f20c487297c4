package kernel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/archive"
	"github.com/threefoldtech/zosbuilder/pkg/download"
)

// ErrNotListed is wrapped when the mirror's sha256sums.asc has no entry for
// the tarball, so it cannot be verified.
var ErrNotListed = errors.New("tarball not listed in sha256sums.asc")

// Layout names the paths inside the kernel work directory (KERNEL_DIR).
type Layout struct{ Dir string }

// Tree is the extracted source, kept as the tarball made it.
func (l Layout) Tree() string { return filepath.Join(l.Dir, "linux") }

// Objtree is where the kernel is built (make O=): generated files and
// objects, apart from the source. It is a direct subfolder of the source
// because kbuild then names the source "..", so every recorded command and
// path is relative and a tree built in one work folder (or restored from
// the artifact cache) is up to date in any other.
func (l Layout) Objtree() string { return filepath.Join(l.Tree(), "out") }

// ModulesRoot receives modules_install: it holds lib/modules/FULL_VERSION.
func (l Layout) ModulesRoot() string { return filepath.Join(l.Dir, "modules-root") }

// Logs holds one make log per step.
func (l Layout) Logs() string { return filepath.Join(l.Dir, "logs") }

// stampName records, inside the source tree and inside the objtree, the
// sha256 of the tarball the source was extracted from.
const stampName = ".zosbuilder-source"

// stampText is the stamp for a tarball sha256. Its first word changes with
// the tree layout, so a tree of another layout (built in place, before
// objtrees) is extracted afresh.
func stampText(sum string) string { return "objtree sha256 " + sum + "\n" }

// SourceOptions says where the kernel source comes from.
type SourceOptions struct {
	// Version is KERNEL_VERSION: the tarball is linux-<Version>.tar.xz and
	// the extracted Makefile must declare this version.
	Version string
	// URL is KERNEL_SOURCE_URL, the mirror directory holding the tarball
	// and sha256sums.asc (https://cdn.kernel.org/pub/linux/kernel/v6.x/),
	// or its parent, as the original had it (see MirrorDirs).
	URL string
	// SHA256 is KERNEL_SHA256: when set it pins the tarball and the mirror's
	// list is not read.
	SHA256 string
	// Tarball is KERNEL_SOURCE_TARBALL: a local tarball used instead of the
	// mirror (its top folder may have any name). It is not checked against
	// SHA256, which names the mirror's file.
	Tarball string
	// Fetcher downloads from URL (it caches and verifies); needed unless
	// Tarball is set.
	Fetcher *download.Fetcher
	Log     logrus.FieldLogger
}

// Source makes Layout{dir}.Tree() hold the kernel source and returns it.
// The tarball is downloaded and verified (or taken from opt.Tarball) and
// extracted into a temporary directory that is renamed into place. A tree
// whose stamp records the same tarball hash is kept as it is. The objtree
// is kept across a fresh extraction when it was built from the same
// tarball (restored from the artifact cache before the source was there).
func Source(ctx context.Context, dir string, opt SourceOptions) (string, error) {
	l := Layout{dir}
	tarball, err := sourceTarball(ctx, opt)
	if err != nil {
		return "", err
	}
	sum, err := download.HashFile(tarball)
	if err != nil {
		return "", fmt.Errorf("kernel source: %w", err)
	}
	stamp := stampText(sum)
	if hasStamp(l.Tree(), stamp) {
		logging.OrDiscard(opt.Log).Infof("kernel source %s already extracted", l.Tree())
		return l.Tree(), checkTreeVersion(l.Tree(), opt.Version)
	}
	if err := removeLeftovers(dir); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, ".linux-extract-")
	if err != nil {
		return "", fmt.Errorf("kernel source: %w", err)
	}
	defer os.RemoveAll(tmp)
	logging.OrDiscard(opt.Log).Infof("extracting %s into %s", tarball, l.Tree())
	if err := archive.ExtractFile(ctx, tarball, tmp, archive.Options{StripComponents: 1, Log: opt.Log}); err != nil {
		return "", fmt.Errorf("kernel source: %w", err)
	}
	if err := checkTreeVersion(tmp, opt.Version); err != nil {
		return "", fmt.Errorf("kernel source %s: %w", tarball, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, stampName), []byte(stamp), 0o644); err != nil {
		return "", fmt.Errorf("kernel source: %w", err)
	}
	if hasStamp(l.Objtree(), stamp) {
		if err := os.Rename(l.Objtree(), filepath.Join(tmp, filepath.Base(l.Objtree()))); err != nil {
			return "", fmt.Errorf("kernel source: keep the objtree: %w", err)
		}
	}
	if err := fsutil.ReplaceDir(tmp, l.Tree()); err != nil {
		return "", fmt.Errorf("kernel source: %w", err)
	}
	return l.Tree(), nil
}

func hasStamp(dir, stamp string) bool {
	b, err := os.ReadFile(filepath.Join(dir, stampName))
	return err == nil && string(b) == stamp
}

// SourceSHA256 is the sha256 of the kernel source tarball Source would
// extract, known without downloading it: KERNEL_SHA256, else the mirror's
// sha256sums.asc entry, else (KERNEL_SOURCE_TARBALL) the local file's hash.
func SourceSHA256(ctx context.Context, opt SourceOptions) (string, error) {
	if opt.Tarball != "" {
		sum, err := download.HashFile(opt.Tarball)
		if err != nil {
			return "", fmt.Errorf("KERNEL_SOURCE_TARBALL: %w", err)
		}
		return sum, nil
	}
	return fromMirrors(opt, func(base, name string) (string, error) { return tarballSum(ctx, opt, base, name) })
}

// sourceTarball returns the local path of the verified tarball.
func sourceTarball(ctx context.Context, opt SourceOptions) (string, error) {
	if opt.Tarball != "" {
		if _, err := os.Stat(opt.Tarball); err != nil {
			return "", fmt.Errorf("KERNEL_SOURCE_TARBALL: %w", err)
		}
		return opt.Tarball, nil
	}
	return fromMirrors(opt, func(base, name string) (string, error) { return tarballFrom(ctx, opt, base, name) })
}

// fromMirrors calls get with each directory MirrorDirs lists until one
// holds the tarball.
func fromMirrors(opt SourceOptions, get func(base, name string) (string, error)) (string, error) {
	if opt.Fetcher == nil || opt.URL == "" {
		return "", errors.New("kernel source: neither KERNEL_SOURCE_TARBALL nor KERNEL_SOURCE_URL is set")
	}
	name := "linux-" + opt.Version + ".tar.xz"
	dirs := MirrorDirs(opt.URL, opt.Version)
	var errs []error
	for i, base := range dirs {
		v, err := get(base, name)
		if err == nil {
			if i > 0 {
				logging.OrDiscard(opt.Log).Infof("KERNEL_SOURCE_URL %s holds no %s; using %s (the v<major>.x/ directory of the original's form)",
					redact.MaskURL(opt.URL), name, redact.MaskURL(base))
			}
			return v, nil
		}
		errs = append(errs, err)
		if !notFound(err) {
			break
		}
	}
	if len(errs) > 1 {
		return "", fmt.Errorf("kernel source: neither %s nor %s serves %s: %w",
			redact.MaskURL(dirs[0]), redact.MaskURL(dirs[1]), name, errors.Join(errs...))
	}
	return "", errs[0]
}

// vDir matches kernel.org's per-major directory names (v6.x).
var vDir = regexp.MustCompile(`^v[0-9]+\.x$`)

// MirrorDirs lists the directories KERNEL_SOURCE_URL may mean, in the order
// they are tried: the URL as given, then, unless it already ends in a
// v<major>.x directory, its v<major>.x/ subdirectory. The original's value
// (https://cdn.kernel.org/pub/linux/kernel, without /v6.x/) thus keeps
// working, as does a local mirror holding the tarball directly.
func MirrorDirs(sourceURL, version string) []string {
	base := strings.TrimSuffix(sourceURL, "/") + "/"
	last := path.Base(strings.TrimSuffix(base, "/"))
	if u, err := url.Parse(base); err == nil {
		last = path.Base(u.Path)
	}
	major, _, _ := strings.Cut(version, ".")
	if vDir.MatchString(last) || major == "" {
		return []string{base}
	}
	return []string{base, base + "v" + major + ".x/"}
}

// tarballSum returns the sha256 of name: KERNEL_SHA256, else the entry of
// base's sha256sums.asc.
func tarballSum(ctx context.Context, opt SourceOptions, base, name string) (string, error) {
	if sum := strings.ToLower(strings.TrimSpace(opt.SHA256)); sum != "" {
		return sum, nil
	}
	sums := base + "sha256sums.asc"
	list, err := opt.Fetcher.Bytes(ctx, sums)
	if err != nil {
		return "", fmt.Errorf("kernel source checksum: %w", err)
	}
	sum, err := ListedSHA256(list, name)
	if err != nil {
		return "", fmt.Errorf("kernel source checksum from %s: %w", redact.MaskURL(sums), err)
	}
	return sum, nil
}

// tarballFrom fetches and verifies name from the mirror directory base.
func tarballFrom(ctx context.Context, opt SourceOptions, base, name string) (string, error) {
	sum, err := tarballSum(ctx, opt, base, name)
	if err != nil {
		return "", err
	}
	p, err := opt.Fetcher.File(ctx, base+name, sum)
	if err != nil {
		return "", fmt.Errorf("kernel source: %w", err)
	}
	return p, nil
}

// notFound reports whether the mirror directory lacks the tarball (HTTP
// 404, a missing file:// path, a sha256sums.asc without it), so another
// directory is worth trying.
func notFound(err error) bool {
	var se *download.StatusError
	return (errors.As(err, &se) && se.Code == 404) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotListed)
}

var sumLine = regexp.MustCompile(`^([0-9a-fA-F]{64})[ \t]+\*?([^\s/]+)$`)

// ListedSHA256 finds name in a sha256sums list such as kernel.org's
// sha256sums.asc ("<sha256>  linux-x.y.z.tar.xz" lines inside a PGP
// clear-signed message). The text is untrusted: only well-formed lines
// count, and a name listed twice with different sums is an error. The PGP
// signature is not checked (no keyring offline); the trust comes from
// fetching the list over HTTPS from the configured mirror.
func ListedSHA256(list []byte, name string) (string, error) {
	found := ""
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		m := sumLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil || m[2] != name {
			continue
		}
		sum := strings.ToLower(m[1])
		if found != "" && found != sum {
			return "", fmt.Errorf("%s is listed with two different checksums", name)
		}
		found = sum
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if found == "" {
		return "", fmt.Errorf("%w: %s", ErrNotListed, name)
	}
	return found, nil
}

// TreeVersion reads VERSION.PATCHLEVEL.SUBLEVEL and EXTRAVERSION from a
// kernel tree's Makefile, e.g. 6.12.44.
func TreeVersion(tree string) (string, error) {
	p := filepath.Join(tree, "Makefile")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("kernel tree version: %w", err)
	}
	return makefileVersion(b, p)
}

// TarballVersion reads the version from the top-level Makefile inside a
// kernel source tarball without extracting it (the Makefile is found after a
// small part of the archive), so KERNEL_VERSION can be left empty when
// KERNEL_SOURCE_TARBALL names a local tarball whose version may change.
func TarballVersion(ctx context.Context, tarball string) (string, error) {
	topMakefile := func(name string) bool {
		name = strings.TrimPrefix(name, "./")
		return strings.Count(name, "/") == 1 && strings.HasSuffix(name, "/Makefile")
	}
	name, b, err := archive.Find(ctx, tarball, topMakefile, 1<<20)
	if err != nil {
		return "", fmt.Errorf("kernel tarball version: %w", err)
	}
	return makefileVersion(b, tarball+":"+name)
}

// makefileVersion reads VERSION.PATCHLEVEL.SUBLEVEL and EXTRAVERSION from the
// head of a kernel Makefile; name is used in errors.
func makefileVersion(b []byte, name string) (string, error) {
	vars := map[string]string{}
	for _, line := range strings.SplitN(string(b), "\n", 20) {
		k, v, ok := strings.Cut(line, "=")
		if ok {
			vars[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if vars["VERSION"] == "" || vars["PATCHLEVEL"] == "" {
		return "", fmt.Errorf("kernel tree version: %s has no VERSION/PATCHLEVEL", name)
	}
	v := vars["VERSION"] + "." + vars["PATCHLEVEL"]
	if s := vars["SUBLEVEL"]; s != "" {
		v += "." + s
	}
	return v + vars["EXTRAVERSION"], nil
}

func checkTreeVersion(tree, want string) error {
	got, err := TreeVersion(tree)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: the source is version %s, KERNEL_VERSION is %s", ErrVersionMismatch, got, want)
	}
	return nil
}

// removeLeftovers deletes what an interrupted extraction or install left.
func removeLeftovers(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("kernel work directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kernel work directory: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".linux-extract-") || strings.HasPrefix(e.Name(), ".old-") || strings.HasPrefix(e.Name(), ".modules-root-") {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove leftover %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}
