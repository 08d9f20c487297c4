package rootfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// writeTree creates files under dir. A name ending in "@" becomes a symlink
// to its content; a name ending in "*" a file with mode 0755.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		name, exe := strings.CutSuffix(name, "*")
		if exe {
			mode = 0o755
		}
		p := filepath.Join(dir, name)
		link, isLink := strings.CutSuffix(p, "@")
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if isLink {
			if err := os.Symlink(content, link); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}

// gcc compiles the C source into out with extra arguments.
func gcc(t *testing.T, out, src string, args ...string) string {
	t.Helper()
	cc := testutil.RequireTool(t, "gcc")
	dir := t.TempDir()
	c := filepath.Join(dir, "prog.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	cmdArgs := append([]string{"-o", out, c}, args...)
	if b, err := exec.Command(cc, cmdArgs...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v: %s", cmdArgs, err, b)
	}
	return out
}

// hostLib finds a library of the build machine (Debian multiarch layout).
func hostLib(t *testing.T, name string) string {
	t.Helper()
	for _, d := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	testutil.Missing(t, "host library %s", name)
	return ""
}

const helloC = `#include <stdio.h>
#include <math.h>
int main(int argc, char **argv) { printf("hello %.1f\n", sqrt((double)argc * 4)); return 0; }
`

// busyboxRoot makes a minimal bootable-looking rootfs from Debian's static
// busybox: /init, a stand-in /sbin/zinit (a copy of busybox: validation only
// checks that it is an executable), applet links and one zinit unit.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	testutil.RequireFile(t, "/bin/busybox")
	root := t.TempDir()
	copyFile(t, "/bin/busybox", filepath.Join(root, "bin/busybox"), 0o755)
	copyFile(t, "/bin/busybox", filepath.Join(root, "sbin/zinit"), 0o755)
	files := map[string]string{
		"init*":                  "#!/bin/sh\nexec /sbin/zinit init\n",
		"bin/sh@":                "busybox",
		"etc/zinit/shell.yaml":   "exec: /bin/sh -c 'echo up'\noneshot: true\n",
		"etc/zinit/console.yaml": "exec: /bin/sh\nafter: [shell]\n",
		"etc/zinit/init/noop.sh": "true\n",
		"lib/firmware/blob.bin":  "\x7fELFnot-really",
		"usr/share/udhcpc/x.sh*": "#!/bin/sh\n",
	}
	for _, applet := range DefaultCommands()[1:] {
		files["bin/"+applet+"@"] = "/bin/busybox"
	}
	writeTree(t, root, files)
	return root
}
