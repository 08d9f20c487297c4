package rootfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

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
	testutil.CopyFile(t, "/bin/busybox", filepath.Join(root, "bin/busybox"), 0o755)
	testutil.CopyFile(t, "/bin/busybox", filepath.Join(root, "sbin/zinit"), 0o755)
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
	testutil.WriteTree(t, root, files)
	return root
}
