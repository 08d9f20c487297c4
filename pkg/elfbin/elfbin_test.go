package elfbin

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

func TestReadDynamicAndStatic(t *testing.T) {
	cc := testutil.RequireTool(t, "gcc")
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.c")
	os.WriteFile(src, []byte("#include <stdio.h>\n#include <math.h>\nint main(int c, char**v){printf(\"%f\\n\", sqrt(c));return 0;}\n"), 0o644)
	dyn := filepath.Join(dir, "dyn")
	if out, err := exec.Command(cc, "-g", "-o", dyn, src, "-lm").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v: %s", err, out)
	}
	info, err := Read(dyn)
	if err != nil {
		t.Fatal(err)
	}
	if info.Static() || info.Interp == "" {
		t.Errorf("dynamic binary reported static: %+v", info)
	}
	if info.Machine != elf.EM_X86_64 {
		t.Errorf("machine = %v", info.Machine)
	}
	want := map[string]bool{"libm.so.6": false, "libc.so.6": false}
	for _, n := range info.Needed {
		if _, ok := want[n]; ok {
			want[n] = true
		}
	}
	for n, seen := range want {
		if !seen {
			t.Errorf("DT_NEEDED %s missing from %v", n, info.Needed)
		}
	}

	static := filepath.Join(dir, "static")
	if out, err := exec.Command(cc, "-static", "-o", static, src, "-lm").CombinedOutput(); err != nil {
		testutil.Missing(t, "static libc for gcc -static: %s", out)
	}
	info, err = Read(static)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Static() || len(info.Needed) != 0 {
		t.Errorf("static binary: %+v", info)
	}
}

func TestReadNotELF(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"script": "#!/bin/sh\necho hi\n", "short": "\x7fE", "empty": ""} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o755)
		if ok, err := IsELF(p); ok || err != nil {
			t.Errorf("IsELF(%s) = %v, %v", name, ok, err)
		}
		if _, err := Read(p); !errors.Is(err, ErrNotELF) {
			t.Errorf("Read(%s) error = %v, want ErrNotELF", name, err)
		}
	}
}

func TestStripKeepsWorkingBinary(t *testing.T) {
	cc := testutil.RequireTool(t, "gcc")
	testutil.RequireTool(t, "strip")
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.c")
	os.WriteFile(src, []byte("#include <stdio.h>\nint main(){puts(\"stripped-ok\");return 0;}\n"), 0o644)
	bin := filepath.Join(dir, "hello")
	if out, err := exec.Command(cc, "-g", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v: %s", err, out)
	}
	saved, err := Strip(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	if saved <= 0 {
		t.Errorf("strip of a -g binary saved %d bytes", saved)
	}
	st, _ := os.Stat(bin)
	if st.Mode().Perm() != 0o755 {
		t.Errorf("mode after strip = %v", st.Mode())
	}
	out, err := exec.Command(bin).Output()
	if err != nil || string(out) != "stripped-ok\n" {
		t.Errorf("stripped binary: %q, %v", out, err)
	}
	if _, err := os.Stat(bin + ".strip-tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind")
	}
}

func TestStripRefusesNonELFWithoutDamage(t *testing.T) {
	testutil.RequireTool(t, "strip")
	p := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(p, []byte("plain text"), 0o644)
	if _, err := Strip(context.Background(), p); err == nil {
		t.Fatal("strip of a text file succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != "plain text" {
		t.Errorf("file changed: %q", b)
	}
}

func TestIsKernelModule(t *testing.T) {
	for name, want := range map[string]bool{
		"e1000.ko": true, "virtio_net.ko.xz": true, "a.ko.zst": true, "b.ko.gz": true,
		"libko.so": false, "kobject": false, "x.ko.bak": false,
	} {
		if got := IsKernelModule(name); got != want {
			t.Errorf("IsKernelModule(%q) = %v", name, got)
		}
	}
}
