package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/elfbin"
	"github.com/threefoldtech/zosbuilder/pkg/zinit"
)

// addDynamic builds /usr/bin/hello (needs libm and libc) into root and, when
// withLibs, copies its interpreter and every library the closure needs from
// the host, with /lib64/ld-linux-x86-64.so.2 an absolute symlink as on Debian.
func addDynamic(t *testing.T, root string, withLibs bool) {
	t.Helper()
	bin := gcc(t, filepath.Join(root, "usr/bin/hello"), helloC, "-lm")
	if !withLibs {
		return
	}
	info, err := elfbin.Read(bin)
	if err != nil {
		t.Fatal(err)
	}
	const ld = "ld-linux-x86-64.so.2"
	if filepath.Base(info.Interp) != ld {
		t.Skipf("unexpected host interpreter %s", info.Interp)
	}
	libdir := filepath.Join(root, "lib/x86_64-linux-gnu")
	testutil.CopyFile(t, hostLib(t, ld), filepath.Join(libdir, ld), 0o755)
	testutil.WriteTree(t, root, map[string]string{"lib64/" + ld + "@": "/lib/x86_64-linux-gnu/" + ld})
	for _, lib := range info.Needed {
		testutil.CopyFile(t, hostLib(t, lib), filepath.Join(libdir, lib), 0o755)
	}
}

func TestValidateGoodRoot(t *testing.T) {
	root := busyboxRoot(t)
	addDynamic(t, root, true)
	if err := Validate(root, ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	root := busyboxRoot(t)
	addDynamic(t, root, true)
	// A library the binary needs is missing.
	os.Remove(filepath.Join(root, "lib/x86_64-linux-gnu/libm.so.6"))
	// The interpreter link dangles inside the root, although its target
	// exists on the host: resolution must never look at the host.
	os.Remove(filepath.Join(root, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
	// A bad unit, a unit zinit would not load, and a missing applet.
	testutil.WriteTree(t, root, map[string]string{
		"etc/zinit/net.yaml":  "exec: /bin/sh\nafter: [udev]\nlog: Ring\n",
		"etc/zinit/getty.yml": "exec: /bin/sh\n",
		"etc/zinit/wait.yaml": "exec: /usr/sbin/not-installed\n",
		"etc/zinit/use.yaml":  "exec: /bin/sh\nafter: [wait]\n",
	})
	os.Remove(filepath.Join(root, "bin/ls"))
	os.Chmod(filepath.Join(root, "init"), 0o644)

	err := Validate(root, ValidateOptions{})
	if err == nil {
		t.Fatal("Validate passed a broken rootfs")
	}
	msg := err.Error()
	for _, want := range []struct {
		sentinel error
		text     string
	}{
		{ErrMissingLibrary, "/usr/bin/hello: needs libm.so.6"},
		{ErrMissingInterpreter, "/usr/bin/hello: interpreter /lib64/ld-linux-x86-64.so.2"},
		{ErrMissingLibrary, "/lib/x86_64-linux-gnu/libc.so.6: needs ld-linux-x86-64.so.2"},
		{zinit.ErrUnknownDependency, `"udev" is not a unit`},
		{zinit.ErrInvalid, "net.yaml:3: log"},
		{zinit.ErrNotLoaded, "getty.yml"},
		{ErrMissingCommand, "unit wait: program /usr/sbin/not-installed"},
		{ErrMissingCommand, "ls: command not found"},
		{ErrNotExecutable, "/init: not executable"},
	} {
		if !errors.Is(err, want.sentinel) {
			t.Errorf("errors.Is(err, %v) = false", want.sentinel)
		}
		if !strings.Contains(msg, want.text) {
			t.Errorf("error does not mention %q", want.text)
		}
	}
	if strings.Contains(msg, "blob.bin") {
		t.Errorf("firmware was checked as a program:\n%s", msg)
	}
	t.Log(msg)
}

func TestValidateMissingZinitAndInit(t *testing.T) {
	root := busyboxRoot(t)
	os.Remove(filepath.Join(root, "init"))
	os.Remove(filepath.Join(root, "sbin/zinit"))
	os.RemoveAll(filepath.Join(root, "etc/zinit"))
	err := Validate(root, ValidateOptions{})
	for _, want := range []string{"/init: missing", "/sbin/zinit: missing", "/etc/zinit"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	if !errors.Is(err, ErrMissing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sentinels missing from %v", err)
	}
}

func TestValidateModprobeNeededForStage1(t *testing.T) {
	root := busyboxRoot(t)
	testutil.WriteTree(t, root, map[string]string{"etc/zero-os/modules-stage1.list": "virtio_net\n"})
	if err := Validate(root, ValidateOptions{}); !errors.Is(err, ErrMissingCommand) || !strings.Contains(err.Error(), "modprobe") {
		t.Errorf("stage-1 list without modprobe: %v", err)
	}
	testutil.WriteTree(t, root, map[string]string{"sbin/modprobe@": "/bin/busybox"})
	if err := Validate(root, ValidateOptions{}); err != nil {
		t.Error(err)
	}
}

// TestValidateSearchPaths covers RPATH with $ORIGIN and musl's path file,
// which replaces musl's default directories.
func TestValidateSearchPaths(t *testing.T) {
	root := busyboxRoot(t)
	lib := gcc(t, filepath.Join(t.TempDir(), "libfoo.so"), "int foo(void) { return 42; }\n", "-shared", "-fPIC")
	// A program that needs nothing but libfoo: its own _start, no libc.
	start := `int foo(void);
void _start(void) { int r = foo(); __asm__ volatile ("mov $60, %%eax; syscall" :: "D"(r)); }
`
	link := []string{"-nostdlib", "-L" + filepath.Dir(lib), "-lfoo", "-Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1"}
	gcc(t, filepath.Join(root, "opt/app/bin/app"), start, append(link, "-Wl,-rpath,$ORIGIN/../lib")...)
	gcc(t, filepath.Join(root, "usr/bin/musl-app"), start, link...)
	testutil.CopyFile(t, lib, filepath.Join(root, "opt/app/lib/libfoo.so"), 0o755)
	testutil.CopyFile(t, lib, filepath.Join(root, "lib/ld-musl-x86_64.so.1"), 0o755) // any x86-64 ELF stands for the loader
	testutil.CopyFile(t, lib, filepath.Join(root, "usr/lib/libfoo.so"), 0o755)

	if err := Validate(root, ValidateOptions{}); err != nil {
		t.Fatalf("RPATH $ORIGIN and musl defaults: %v", err)
	}
	// With a path file, musl searches only its directories.
	testutil.WriteTree(t, root, map[string]string{"etc/ld-musl-x86_64.path": "/opt/app/lib\n"})
	os.Remove(filepath.Join(root, "opt/app/lib/libfoo.so"))
	err := Validate(root, ValidateOptions{})
	if !errors.Is(err, ErrMissingLibrary) || !strings.Contains(err.Error(), "/usr/bin/musl-app: needs libfoo.so") ||
		!strings.Contains(err.Error(), "/opt/app/bin/app: needs libfoo.so") {
		t.Errorf("expected libfoo.so missing for both programs: %v", err)
	}
}
