// Package fsutil writes files the way every output of the build is written:
// to a temporary name in the same folder, then renamed over the final path,
// so a reader (or the next build after a crash) sees the old file or the new
// one, never a partial one.
package fsutil

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// WriteFile writes data to path atomically with exactly mode (no umask),
// creating the folder when needed.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	return write(path, bytes.NewReader(data), mode, false)
}

// WriteFileSync is WriteFile that also flushes the file and its folder to
// disk before returning: for records that must survive a power cut (stage
// markers), not for bulk copies.
func WriteFileSync(path string, data []byte, mode fs.FileMode) error {
	return write(path, bytes.NewReader(data), mode, true)
}

// CopyFile copies the content of src to dst atomically with mode.
func CopyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	if err := write(dst, in, mode, false); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

func write(path string, r io.Reader, mode fs.FileMode, sync bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, r)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil && sync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if sync {
		if d, err := os.Open(dir); err == nil {
			_ = d.Sync() // the rename is done; a failed folder sync only weakens durability
			d.Close()
		}
	}
	return nil
}

// LastLines returns the last n lines of b: what a failed command's log
// shows in an error message.
func LastLines(b []byte, n int) string {
	lines := strings.Split(string(bytes.TrimRight(b, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FileLastLines is LastLines of a file's content ("" when it cannot be read).
func FileLastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return LastLines(b, n)
}
