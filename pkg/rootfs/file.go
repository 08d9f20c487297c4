package rootfs

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
)

// InstallInit installs the init script src as root/init with mode 0755,
// atomically. src must start with "#!" or be an ELF executable, or the
// kernel could not run it as PID 1.
func InstallInit(src, root string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("install init: %w", err)
	}
	if !isExecutableFormat(data) {
		return fmt.Errorf("install init %s: %w: it starts with neither #! nor the ELF magic", src, ErrNotExecutable)
	}
	return fsutil.WriteFile(filepath.Join(root, "init"), data, 0o755, fsutil.KeepOwner())
}

func isExecutableFormat(data []byte) bool {
	return len(data) >= 4 && (string(data[:2]) == "#!" || string(data[:4]) == "\x7fELF")
}
