package alpine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/logging"
)

// ErrApk is wrapped by the error of a failed apk run.
var ErrApk = errors.New("apk failed")

// Package is one requested package: an apk dependency spec
// ("busybox", "busybox>=1.36") and where it was asked for, so a failure
// points at the packages.list line. It has the fields of config.Package, so
// one converts to the other.
type Package struct {
	Spec string
	File string
	Line int
}

// Where is "file:line", or "" when the package came from no file.
func (p Package) Where() string {
	if p.File == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Name is the package name of the spec, without version constraint or
// repository tag.
func (p Package) Name() string {
	name, _, _ := strings.Cut(p.Spec, "@")
	if i := strings.IndexAny(name, "<>=~"); i >= 0 {
		name = name[:i]
	}
	return name
}

// UserNamespace says when apk runs in a user namespace mapping the caller
// to root.
type UserNamespace int

const (
	// UserNSAuto uses a user namespace when not running as root.
	UserNSAuto UserNamespace = iota
	// UserNSAlways always uses one (tests; rootless containers).
	UserNSAlways
	// UserNSNever never does (apk then needs root to set ownership).
	UserNSNever
)

// Runner installs Alpine packages into a root with apk. Its zero value is
// not usable: Apk and Root are required.
type Runner struct {
	// Apk is the apk program: the host's apk or apk.static (FindApk).
	Apk string
	// Root is the root to install into (INSTALL_DIR).
	Root string
	// Arch is ALPINE_ARCH; empty means x86_64.
	Arch string
	// RepositoriesFile lists the repositories; empty means
	// Root/etc/apk/repositories (written by Configure).
	RepositoriesFile string
	// KeysDir holds the trusted keys; empty means Root/etc/apk/keys.
	KeysDir string
	// InitDB creates the apk database in a fresh root (a firmware staging
	// root that is not a minirootfs).
	InitDB bool
	// NoScripts skips package scripts (a root without /bin/sh).
	NoScripts bool
	// UserNamespace says when to wrap apk in a user namespace.
	UserNamespace UserNamespace
	// Log receives apk's output at debug level; nil is silent.
	Log logrus.FieldLogger
}

// Install installs packages by name. It satisfies the firmware code's
// PackageInstaller interface (Install(ctx, []string) error).
func (r *Runner) Install(ctx context.Context, packages []string) error {
	pkgs := make([]Package, len(packages))
	for i, p := range packages {
		pkgs[i] = Package{Spec: p}
	}
	return r.Add(ctx, pkgs)
}

// Add runs `apk add` for pkgs. A failure returns an *InstallError with
// apk's output and the requested packages apk complained about.
func (r *Runner) Add(ctx context.Context, pkgs []Package) error {
	if r.Apk == "" || r.Root == "" {
		return errors.New("apk add: no apk program or no root given")
	}
	if len(pkgs) == 0 {
		return nil
	}
	for _, p := range pkgs {
		if p.Spec == "" || strings.HasPrefix(p.Spec, "-") || strings.ContainsAny(p.Spec, " \t\n") {
			return fmt.Errorf("apk add: %s: invalid package %q", p.Where(), p.Spec)
		}
	}
	cmd := exec.CommandContext(ctx, r.Apk, r.Args(pkgs)...)
	cmd.Env = os.Environ()
	if r.useUserNS() {
		cmd.SysProcAttr = userNS()
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	logging.OrDiscard(r.Log).WithField("root", r.Root).Debugf("apk add output:\n%s", out.String())
	if err != nil {
		return &InstallError{Output: strings.TrimSpace(out.String()), Culprits: culprits(out.String(), pkgs), Err: err}
	}
	return nil
}

// Args is the apk command line (without the program) that Add runs.
func (r *Runner) Args(pkgs []Package) []string {
	arch := r.Arch
	if arch == "" {
		arch = "x86_64"
	}
	repos := r.RepositoriesFile
	if repos == "" {
		repos = filepath.Join(r.Root, "etc/apk/repositories")
	}
	keys := r.KeysDir
	if keys == "" {
		keys = filepath.Join(r.Root, "etc/apk/keys")
	}
	args := []string{"add", "--root", r.Root, "--repositories-file", repos, "--keys-dir", keys,
		"--arch", arch, "--no-cache", "--no-progress"}
	if r.InitDB {
		args = append(args, "--initdb")
	}
	if r.NoScripts {
		args = append(args, "--no-scripts")
	}
	for _, p := range pkgs {
		args = append(args, p.Spec)
	}
	return args
}

func (r *Runner) useUserNS() bool {
	switch r.UserNamespace {
	case UserNSAlways:
		return true
	case UserNSNever:
		return false
	}
	return os.Geteuid() != 0
}

// userNS maps the caller's uid and gid to root in a new user namespace
// (what `unshare --map-root-user` does), so apk may chown and chroot for its
// scripts without privileges. Files apk gives to other owners cannot be
// mapped and keep the caller's.
func userNS() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
}

// InstallError is a failed apk run: its output and the requested packages
// it names.
type InstallError struct {
	Output   string
	Culprits []Package
	Err      error
}

func (e *InstallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: apk add: %s", ErrApk, e.Err)
	if e.Output != "" {
		b.WriteString("\n" + e.Output)
	}
	for _, p := range e.Culprits {
		where := p.Where()
		if where == "" {
			where = "requested by the caller"
		}
		fmt.Fprintf(&b, "\n%s: %s: requested here", where, p.Spec)
	}
	return b.String()
}

// Unwrap lets errors.Is match ErrApk and the process error.
func (e *InstallError) Unwrap() []error { return []error{ErrApk, e.Err} }

var (
	// world[busybox>=1.36] in "required by:" and "breaks:" lines.
	worldRe = regexp.MustCompile(`world\[([^\]]+)\]`)
	// "  nosuchpkg (no such package):"
	missingRe = regexp.MustCompile(`(?m)^\s*(\S+) \(no such package\)`)
)

// culprits picks the requested packages apk's output blames, in request
// order.
func culprits(out string, pkgs []Package) []Package {
	specs := map[string]bool{}
	for _, m := range worldRe.FindAllStringSubmatch(out, -1) {
		specs[m[1]] = true
	}
	names := map[string]bool{}
	for _, m := range missingRe.FindAllStringSubmatch(out, -1) {
		names[m[1]] = true
	}
	var blamed []Package
	for _, p := range pkgs {
		if specs[p.Spec] || names[p.Name()] {
			blamed = append(blamed, p)
		}
	}
	return blamed
}
