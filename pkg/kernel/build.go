package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/pkg/download"
)

// ErrRequiredOption is wrapped when olddefconfig drops an option the build
// needs (initramfs, XZ, EFI stub): its dependencies are missing from the
// kernel config.
var ErrRequiredOption = errors.New("required kernel option dropped")

// RequiredOptions returns the options the Zero-OS kernel always gets: an
// embedded initramfs compressed with xz, booted directly by UEFI (EFI
// needs ACPI on x86).
func RequiredOptions() *Config {
	c := &Config{values: map[string]string{}}
	for _, sym := range []string{"CONFIG_BLK_DEV_INITRD", "CONFIG_RD_XZ", "CONFIG_ACPI", "CONFIG_EFI", "CONFIG_EFI_STUB"} {
		c.Set(sym, "y")
	}
	return c
}

// Options are what every kernel step needs.
type Options struct {
	// Dir is KERNEL_DIR, the work directory (see Layout); the source must
	// be in place (Source).
	Dir string
	// FullVersion is FullVersion(KERNEL_VERSION, ConfigPath): the release
	// the tree must report.
	FullVersion string
	// ConfigPath is config/kernel.config.
	ConfigPath string
	// Jobs is make's -j (JOBS); 0 means the number of CPUs.
	Jobs int
	// SourceDateEpoch, when not 0, fixes the build timestamp
	// (KBUILD_BUILD_TIMESTAMP) for reproducible images.
	SourceDateEpoch int64
	// Depmod is the depmod binary; "" means depmod from PATH.
	Depmod string
	// Env is added to make's environment (the compile cache's PATH and
	// settings). It must not change what is built.
	Env []string
	Log logrus.FieldLogger
}

func (o Options) makeArgs(targets ...string) ([]string, error) {
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	obj, err := filepath.Abs(Layout{o.Dir}.Objtree())
	if err != nil {
		return nil, err
	}
	return append([]string{"ARCH=x86_64", "-j" + strconv.Itoa(jobs), "O=" + obj}, targets...), nil
}

// kbuildEnv fixes what kbuild would take from the machine and the clock.
func (o Options) kbuildEnv() []string {
	// Fixed user, host and build number (which kbuild otherwise counts up in
	// .version) keep the image the same from build to build.
	env := []string{"KBUILD_BUILD_USER=zosbuilder", "KBUILD_BUILD_HOST=zosbuilder", "KBUILD_BUILD_VERSION=1"}
	if o.SourceDateEpoch != 0 {
		ts := time.Unix(o.SourceDateEpoch, 0).UTC().Format("Mon Jan 2 15:04:05 UTC 2006")
		env = append(env, "KBUILD_BUILD_TIMESTAMP="+ts)
	}
	return env
}

func (o Options) make(ctx context.Context, step string, targets ...string) error {
	l := Layout{o.Dir}
	args, err := o.makeArgs(targets...)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	logging.OrDiscard(o.Log).Infof("kernel: make %s (log %s)", strings.Join(targets, " "), filepath.Join(l.Logs(), step+".log"))
	start := time.Now()
	cpu, err := runLogged(ctx, l.Tree(), l.Logs(), step, append(o.kbuildEnv(), o.Env...), "make", args...)
	if err == nil {
		logging.OrDiscard(o.Log).Infof("kernel: make %s: %s, %s CPU", step, time.Since(start).Round(100*time.Millisecond), cpu.Round(100*time.Millisecond))
	}
	return err
}

// prepareObjtree makes the objtree, or empties it when it was built from
// another source than the tree holds (its stamp differs).
func prepareObjtree(l Layout) error {
	want, err := os.ReadFile(filepath.Join(l.Tree(), stampName))
	if err != nil {
		return fmt.Errorf("kernel objtree: the source is not in place: %w", err)
	}
	if have, err := os.ReadFile(filepath.Join(l.Objtree(), stampName)); err == nil && string(have) == string(want) {
		return nil
	}
	if err := os.RemoveAll(l.Objtree()); err != nil {
		return fmt.Errorf("kernel objtree: %w", err)
	}
	if err := os.MkdirAll(l.Objtree(), 0o755); err != nil {
		return fmt.Errorf("kernel objtree: %w", err)
	}
	return os.WriteFile(filepath.Join(l.Objtree(), stampName), want, 0o644)
}

// Configure writes the tree's .config from ConfigPath with the
// RequiredOptions and CONFIG_INITRAMFS_SOURCE set to initramfs ("" for
// none), runs make olddefconfig, and returns the y/m options of ConfigPath
// that olddefconfig dropped (the caller warns). A dropped required option
// is an error wrapping ErrRequiredOption.
func Configure(ctx context.Context, opt Options, initramfs string) ([]Dropped, error) {
	l := Layout{opt.Dir}
	if err := prepareObjtree(l); err != nil {
		return nil, err
	}
	return configure(ctx, opt, initramfs, filepath.Join(l.Objtree(), ".config"))
}

// CheckConfig is Configure on a scratch copy (KCONFIG_CONFIG), leaving the
// tree's .config and build alone: it tells what olddefconfig would drop
// from ConfigPath on this source.
func CheckConfig(ctx context.Context, opt Options) ([]Dropped, error) {
	if err := prepareObjtree(Layout{opt.Dir}); err != nil {
		return nil, err
	}
	scratch := filepath.Join(opt.Dir, ".check.config")
	defer os.Remove(scratch)
	defer os.Remove(scratch + ".old")
	return configure(ctx, opt, "", scratch)
}

func configure(ctx context.Context, opt Options, initramfs, dotConfig string) ([]Dropped, error) {
	want, err := ReadConfig(opt.ConfigPath)
	if err != nil {
		return nil, err
	}
	cfg := want.clone()
	required := RequiredOptions()
	for _, sym := range required.order {
		cfg.Set(sym, required.values[sym])
	}
	cfg.Set("CONFIG_INITRAMFS_SOURCE", quote(initramfs))
	abs, err := filepath.Abs(dotConfig)
	if err != nil {
		return nil, fmt.Errorf("configure kernel: %w", err)
	}
	if err := fsutil.WriteFile(abs, cfg.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("configure kernel: %w", err)
	}
	if err := opt.make(ctx, "olddefconfig", "KCONFIG_CONFIG="+abs, "olddefconfig"); err != nil {
		return nil, fmt.Errorf("configure kernel: %w", err)
	}
	got, err := ReadConfig(abs)
	if err != nil {
		return nil, fmt.Errorf("configure kernel: %w", err)
	}
	if lost := Missing(required, got); len(lost) > 0 {
		return nil, fmt.Errorf("configure kernel from %s: %w: %s (add what they depend on to the config)",
			opt.ConfigPath, ErrRequiredOption, joinDropped(lost))
	}
	if g := got.String("CONFIG_INITRAMFS_SOURCE"); g != initramfs {
		return nil, fmt.Errorf("configure kernel: CONFIG_INITRAMFS_SOURCE is %q after olddefconfig, want %q", g, initramfs)
	}
	return Missing(want, got), nil
}

func joinDropped(ds []Dropped) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ", ")
}

// BuildModules configures the tree (no initramfs yet), builds vmlinux and
// the modules, installs them into Layout.ModulesRoot() and runs depmod for FullVersion.
// It returns the modules root (holding lib/modules/FULL_VERSION) and the
// options olddefconfig dropped. The install goes to a temporary directory
// renamed into place, so a failed run leaves the previous tree intact.
func BuildModules(ctx context.Context, opt Options) (string, []Dropped, error) {
	l := Layout{opt.Dir}
	dropped, err := Configure(ctx, opt, "")
	if err != nil {
		return "", nil, err
	}
	// Without vmlinux, modpost has no vmlinux.symvers to check the modules'
	// symbols against and modules.builtin is never written.
	if err := opt.make(ctx, "modules", "vmlinux", "modules"); err != nil {
		return "", dropped, fmt.Errorf("build kernel modules: %w", err)
	}
	if err := CheckRelease(l.Objtree(), opt.FullVersion); err != nil {
		return "", dropped, err
	}
	if err := removeLeftovers(opt.Dir); err != nil {
		return "", dropped, err
	}
	tmp, err := os.MkdirTemp(opt.Dir, ".modules-root-")
	if err != nil {
		return "", dropped, fmt.Errorf("install kernel modules: %w", err)
	}
	defer os.RemoveAll(tmp)
	abs, err := filepath.Abs(tmp)
	if err != nil {
		return "", dropped, fmt.Errorf("install kernel modules: %w", err)
	}
	if err := opt.make(ctx, "modules_install", "modules_install", "INSTALL_MOD_PATH="+abs, "DEPMOD=true"); err != nil {
		return "", dropped, fmt.Errorf("install kernel modules: %w", err)
	}
	modDir := filepath.Join(tmp, "lib", "modules", opt.FullVersion)
	if _, err := os.Stat(modDir); err != nil {
		return "", dropped, fmt.Errorf("install kernel modules: %w: modules_install did not create %s", ErrVersionMismatch, modDir)
	}
	// build and source point into this machine's kernel tree: they would
	// dangle in the image and in the modules flist.
	for _, link := range []string{"build", "source"} {
		if err := os.Remove(filepath.Join(modDir, link)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", dropped, fmt.Errorf("install kernel modules: %w", err)
		}
	}
	if err := depmod(ctx, opt.Depmod, tmp, opt.FullVersion); err != nil {
		return "", dropped, err
	}
	if err := fsutil.ReplaceDir(tmp, l.ModulesRoot()); err != nil {
		return "", dropped, fmt.Errorf("install kernel modules: %w", err)
	}
	return l.ModulesRoot(), dropped, nil
}

// PrebuiltModules checks a KERNEL_MODULES_DIR (a directory holding
// lib/modules/VERSION) and returns it as the modules root.
func PrebuiltModules(dir, version string) (string, error) {
	p := filepath.Join(dir, "lib", "modules", version)
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("KERNEL_MODULES_DIR: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("KERNEL_MODULES_DIR: %s is not a directory", p)
	}
	return dir, nil
}

func depmod(ctx context.Context, bin, root, version string) error {
	if bin == "" {
		bin = "depmod"
	}
	out, err := exec.CommandContext(ctx, bin, "-b", root, version).CombinedOutput()
	if err != nil {
		return fmt.Errorf("depmod -b %s %s: %w: %s", root, version, err, fsutil.LastLines(out, tailLines))
	}
	return nil
}

// ImageOptions are the inputs and output of BuildImage.
type ImageOptions struct {
	// Initramfs is DIST_DIR/initramfs.cpio.xz, embedded as it is.
	Initramfs string
	// BuildID is the /etc/zero-os-build-id the embedded initramfs must
	// carry; "" skips that comparison (the byte comparison still runs).
	BuildID string
	// Output is DIST_DIR/vmlinuz.efi.
	Output string
}

// BuildImage builds bzImage with Initramfs embedded, checks the release
// and that the image carries exactly that initramfs (and BuildID), and
// copies it to Output through a temporary file. It returns the options
// olddefconfig dropped.
func BuildImage(ctx context.Context, opt Options, img ImageOptions) ([]Dropped, error) {
	l := Layout{opt.Dir}
	initramfs, err := filepath.Abs(img.Initramfs)
	if err != nil {
		return nil, fmt.Errorf("build kernel: %w", err)
	}
	if !strings.HasSuffix(initramfs, ".cpio.xz") {
		return nil, fmt.Errorf("build kernel: initramfs %s must be named *.cpio.xz to be embedded as it is", initramfs)
	}
	if _, err := os.Stat(initramfs); err != nil {
		return nil, fmt.Errorf("build kernel: initramfs: %w", err)
	}
	dropped, err := Configure(ctx, opt, initramfs)
	if err != nil {
		return nil, err
	}
	if err := forgetStaleInitramfs(l.Objtree(), initramfs); err != nil {
		return dropped, err
	}
	if err := opt.make(ctx, "bzImage", "bzImage"); err != nil {
		return dropped, fmt.Errorf("build kernel: %w", err)
	}
	if err := CheckRelease(l.Objtree(), opt.FullVersion); err != nil {
		return dropped, err
	}
	bz := filepath.Join(l.Objtree(), "arch", "x86", "boot", "bzImage")
	if _, err := VerifyEmbedded(ctx, bz, initramfs, img.BuildID); err != nil {
		return dropped, err
	}
	if err := fsutil.CopyFile(bz, img.Output, 0o644); err != nil {
		return dropped, fmt.Errorf("build kernel: %w", err)
	}
	return dropped, nil
}

// forgetStaleInitramfs removes the kernel build's copy of the initramfs
// when its content differs from the one to embed. Make decides by
// timestamps, and an initramfs rewritten with an old mtime (a reproducible
// build, a restored cache) would otherwise leave the previous one inside.
func forgetStaleInitramfs(objtree, initramfs string) error {
	inc := filepath.Join(objtree, "usr", "initramfs_inc_data")
	have, err := download.HashFile(inc)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("build kernel: %w", err)
	}
	want, err := download.HashFile(initramfs)
	if err != nil {
		return fmt.Errorf("build kernel: %w", err)
	}
	if have == want {
		return nil
	}
	for _, f := range []string{inc, filepath.Join(objtree, "usr", "initramfs_data.o")} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("build kernel: %w", err)
		}
	}
	return nil
}
