package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// mountAt reports whether dir is a mount point, as util-linux's
// `mountpoint -q` does: dir (symlinks resolved) is listed as a mount point
// in /proc/self/mountinfo, or, where that cannot be read, it sits on
// another device than its parent. fstype is the type of the topmost mount
// on dir ("" when only the device test could tell).
func mountAt(dir string) (fstype string, mounted bool, err error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", false, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if errors.Is(err, fs.ErrNotExist) {
		mounted, err := otherDevice(real)
		return "", mounted, err
	}
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return "", false, fmt.Errorf("/proc/self/mountinfo: %w", err)
	}
	for _, m := range mounts {
		if m.point == real {
			fstype, mounted = m.fstype, true // later lines are mounted on top
		}
	}
	return fstype, mounted, nil
}

// mountinfoLine is what this program reads of a line of mountinfo.
type mountinfoLine struct {
	point, fstype, source string
}

// parseMountinfo reads the mount point (fifth field), the type and the
// source (the two fields after " - ") of each line of a mountinfo file.
func parseMountinfo(r io.Reader) ([]mountinfoLine, error) {
	var out []mountinfoLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 2 {
			continue
		}
		out = append(out, mountinfoLine{point: unescapeOctal(fields[4]), fstype: tail[0], source: unescapeOctal(tail[1])})
	}
	return out, sc.Err()
}

// deadFUSE reports whether the FUSE mount on dir has lost its server: the
// kernel answers statfs, which it always forwards to the server (a stat may
// still be answered from the attribute cache), with a disconnected error. A
// server that does not answer within a few seconds is taken as alive but
// slow.
func deadFUSE(dir string) bool {
	return disconnected(retryEIO(func() error {
		res := make(chan error, 1)
		go func() {
			var st syscall.Statfs_t
			res <- syscall.Statfs(dir, &st)
		}()
		select {
		case err := <-res:
			return err
		case <-time.After(3 * time.Second):
			return nil
		}
	}))
}

// retryEIO calls op again if it failed with EIO: a request the server was
// reading when it died ends with EIO, and the next one, made after the
// kernel has aborted the connection, gets the disconnected error.
func retryEIO(op func() error) error {
	err := op()
	if errors.Is(err, syscall.EIO) {
		err = op()
	}
	return err
}

// disconnected reports whether err is the kernel's answer for a FUSE mount
// whose server is gone: ENOTCONN once the connection is down, ECONNABORTED
// for a request that was queued when the server's device was closed.
func disconnected(err error) bool {
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
}

// unescapeOctal undoes the kernel's escaping of space, tab, newline and
// backslash in mountinfo paths (\040, \011, \012, \134).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// otherDevice is the stat test of mountpoint(1): dir is on another device
// than its parent, or is the root itself.
func otherDevice(dir string) (bool, error) {
	var st, parent syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return false, err
	}
	if err := syscall.Stat(filepath.Join(dir, ".."), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino, nil
}
