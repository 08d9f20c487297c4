package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeAtomic writes data to path through a temporary file in the same
// directory that is renamed over path, so readers see the old or the new
// content, never a partial one. The file gets mode, and the owner of the
// file it replaces when the process may set it.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := keepOwner(path, tmp.Name()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// keepOwner gives tmp the owner of the file it will replace. An
// unprivileged build owns every file of its tree, so EPERM only means the
// owner cannot be kept and the archive writer sets 0:0 anyway.
func keepOwner(old, tmp string) error {
	uid, gid, ok := owner(old)
	if !ok {
		return nil
	}
	if err := os.Lchown(tmp, uid, gid); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return nil
}

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
	return writeAtomic(filepath.Join(root, "init"), data, 0o755)
}

func isExecutableFormat(data []byte) bool {
	return len(data) >= 4 && (string(data[:2]) == "#!" || string(data[:4]) == "\x7fELF")
}
