package rootfs

import (
	"os"
	"syscall"
)

// owner returns the uid and gid of path when it exists.
func owner(path string) (uid, gid int, ok bool) {
	st, err := os.Lstat(path)
	if err != nil {
		return 0, 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(sys.Uid), int(sys.Gid), true
}
