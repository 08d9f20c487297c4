// Package kernel fetches, configures and builds the Zero-OS kernel: its
// modules first, later the bzImage with the initramfs embedded, and proves
// that the image carries the initramfs just made.
package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrVersionMismatch is wrapped when the kernel tree reports a release other
// than FULL_VERSION.
var ErrVersionMismatch = errors.New("kernel release mismatch")

// FullVersion is KERNEL_VERSION plus CONFIG_LOCALVERSION of the kernel
// config (quotes stripped), e.g. 6.12.44-Zero-OS: the directory name under
// /lib/modules. It never asks the build host (uname -r describes the host's
// kernel, not the one being built).
func FullVersion(kernelVersion, kernelConfigPath string) (string, error) {
	v := strings.TrimSpace(kernelVersion)
	if v == "" {
		return "", errors.New("full kernel version: KERNEL_VERSION is empty")
	}
	if strings.ContainsAny(v, "/ \t\"") {
		return "", fmt.Errorf("full kernel version: KERNEL_VERSION %q is not a version", v)
	}
	c, err := ReadConfig(kernelConfigPath)
	if err != nil {
		return "", fmt.Errorf("full kernel version: %w", err)
	}
	local := c.String("CONFIG_LOCALVERSION")
	if strings.ContainsAny(local, "/ \t") {
		return "", fmt.Errorf("full kernel version: %s: CONFIG_LOCALVERSION %q contains a space or '/'", kernelConfigPath, local)
	}
	return v + local, nil
}

// CheckRelease compares include/config/kernel.release of a built kernel
// tree with fullVersion. A tree that has not been built yet (no file) passes.
func CheckRelease(tree, fullVersion string) error {
	p := filepath.Join(tree, "include", "config", "kernel.release")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check kernel release: %w", err)
	}
	if got := strings.TrimSpace(string(b)); got != fullVersion {
		return fmt.Errorf("%w: %s says %s, KERNEL_VERSION + CONFIG_LOCALVERSION give %s (is KERNEL_VERSION the version of the source, and CONFIG_LOCALVERSION_AUTO off?)",
			ErrVersionMismatch, p, got, fullVersion)
	}
	return nil
}
