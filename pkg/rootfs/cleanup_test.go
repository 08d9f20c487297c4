package rootfs

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/elfbin"
)

func TestCleanupRemovesAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	root, outside := t.TempDir(), t.TempDir()
	testutil.WriteTree(t, outside, map[string]string{"doc/keep": "host file"})
	testutil.WriteTree(t, root, map[string]string{
		"usr/share/doc/pkg/README":               "doc",
		"usr/share/man/man1/ls.1.gz":             "man",
		"usr/share/info/dir":                     "info",
		"usr/include/stdio.h":                    "header",
		"usr/lib/libz.a":                         "!<arch>\nobject",
		"usr/lib/notanarchive.a":                 "plain data named .a",
		"usr/lib/libz.la":                        "# libz.la - a libtool library file\n",
		"usr/lib/pkgconfig/z.pc":                 "pc",
		"var/cache/apk/APKINDEX.abc.tar.gz":      "index",
		"usr/share/locale/de/LC_MESSAGES/x.mo":   "de",
		"usr/share/locale/C.UTF-8/LC_MESSAGES/x": "c",
		"usr/share/locale/locale.alias":          "alias",
		"usr/lib/python3.12/__pycache__/a.pyc":   "bytecode",
		"usr/lib/python3.12/b.py":                "print(1)",
		"usr/lib/python3.12/b.pyc":               "bytecode",
		"usr/lib/python3.12/sourceless.pyc":      "bytecode",
		"usr/bin/tool.strip-tmp":                 "leftover",
		"usr/share/udhcpc/default.script*":       "#!/bin/sh\n",
		"lib/firmware/doc/notes":                 "firmware",
		"usr/local/share@":                       outside,
	})
	rep, err := Cleanup(ctx, root, CleanupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gone := []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/include", "usr/lib/libz.a", "usr/lib/libz.la",
		"usr/lib/pkgconfig", "var/cache/apk/APKINDEX.abc.tar.gz", "usr/share/locale/de", "usr/lib/python3.12/__pycache__",
		"usr/lib/python3.12/b.pyc", "usr/bin/tool.strip-tmp"}
	kept := []string{"usr/lib/notanarchive.a", "var/cache/apk", "usr/share/locale/C.UTF-8/LC_MESSAGES/x", "usr/share/locale/locale.alias",
		"usr/lib/python3.12/b.py", "usr/lib/python3.12/sourceless.pyc", "usr/share/udhcpc/default.script", "lib/firmware/doc/notes"}
	for _, p := range gone {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s not removed", p)
		}
		if !slices.ContainsFunc(rep.Removed, func(r Removal) bool { return r.Path == "/"+p && r.Reason != "" }) {
			t.Errorf("%s missing from the report", p)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s removed", p)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "doc/keep")); err != nil {
		t.Errorf("cleanup followed a symlink out of the root: %v", err)
	}
	if len(rep.Warnings) == 0 {
		t.Error("no warning about the symlink leaving the root")
	}
	if rep.RemovedBytes <= 0 {
		t.Errorf("removed bytes = %d", rep.RemovedBytes)
	}

	again, err := Cleanup(ctx, root, CleanupOptions{})
	if err != nil || len(again.Removed) != 0 {
		t.Errorf("second run removed %v, %v", again.Removed, err)
	}
}

func modinfo(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(testutil.RequireTool(t, "modinfo"), "-F", "vermagic", path).Output()
	if err != nil {
		t.Fatalf("modinfo %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

func symbolCount(t *testing.T, path string) int {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	return len(syms)
}

func TestCleanupStrip(t *testing.T) {
	testutil.RequireTool(t, "strip")
	ctx := context.Background()
	root := t.TempDir()
	dyn := gcc(t, filepath.Join(root, "usr/bin/hello"), helloC, "-g", "-lm")
	static := filepath.Join(root, "sbin/hello-static")
	gcc(t, static, helloC, "-g", "-static", "-lm")
	mods, _ := filepath.Glob("/lib/modules/6.1.0-*/kernel/drivers/net/dummy.ko")
	if len(mods) == 0 {
		testutil.Missing(t, "Debian kernel module /lib/modules/6.1.0-*/kernel/drivers/net/dummy.ko (linux-image-amd64)")
	}
	ko := filepath.Join(root, "lib/modules/6.1.0/kernel/dummy.ko")
	testutil.CopyFile(t, mods[0], ko, 0o644)
	vermagic := modinfo(t, ko)
	symbols := symbolCount(t, ko)
	kxz := filepath.Join(root, "lib/modules/6.1.0/kernel/dummy2.ko.xz")
	testutil.CopyFile(t, mods[0], strings.TrimSuffix(kxz, ".xz"), 0o644)
	if out, err := exec.Command(testutil.RequireTool(t, "xz"), strings.TrimSuffix(kxz, ".xz")).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v: %s", err, out)
	}
	firmware := filepath.Join(root, "lib/firmware/vendor/blob.elf")
	testutil.CopyFile(t, dyn, firmware, 0o644)
	link := filepath.Join(root, "usr/bin/hello-link")
	if err := os.Link(dyn, link); err != nil {
		t.Fatal(err)
	}
	testutil.WriteTree(t, root, map[string]string{"usr/bin/script*": "#!/bin/sh\necho hi\n"})

	snapshot := func(paths ...string) map[string][]byte {
		m := map[string][]byte{}
		for _, p := range paths {
			m[p], _ = os.ReadFile(p)
		}
		return m
	}
	untouched := snapshot(kxz, firmware, filepath.Join(root, "usr/bin/script"))
	sizes := map[string]int64{}
	for _, p := range []string{dyn, static, ko} {
		st, _ := os.Stat(p)
		sizes[p] = st.Size()
	}
	wantDyn, wantStatic := testutil.Run(t, "", nil, dyn), testutil.Run(t, "", nil, static)

	rep, err := Cleanup(ctx, root, CleanupOptions{Strip: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.StripSaved <= 0 {
		t.Errorf("strip saved %d bytes", rep.StripSaved)
	}
	for _, p := range []string{dyn, static} {
		if st, _ := os.Stat(p); st.Size() >= sizes[p] || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: size %d (was %d), mode %v", p, st.Size(), sizes[p], st.Mode())
		}
	}
	if got := testutil.Run(t, "", nil, dyn); got != wantDyn {
		t.Errorf("stripped dynamic binary prints %q, want %q", got, wantDyn)
	}
	if got := testutil.Run(t, "", nil, static); got != wantStatic {
		t.Errorf("stripped static binary prints %q, want %q", got, wantStatic)
	}
	if _, err := elfbin.Read(ko); err != nil {
		t.Errorf("module no longer parses: %v", err)
	}
	if got := modinfo(t, ko); got != vermagic {
		t.Errorf("module vermagic %q, want %q", got, vermagic)
	}
	// The module loader resolves the symbol table: strip must keep it whole.
	if got := symbolCount(t, ko); got != symbols {
		t.Errorf("module has %d symbols after strip, want %d", got, symbols)
	}
	for p, want := range untouched {
		if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
			t.Errorf("%s changed", p)
		}
	}
	var a, b syscall.Stat_t
	syscall.Stat(dyn, &a)
	syscall.Stat(link, &b)
	if a.Ino != b.Ino {
		t.Error("hard link broken by strip")
	}
	if rep.Stripped != 3 || len(rep.Skipped) != 0 {
		t.Errorf("stripped %d inodes, skipped %v; want 3 (hello with its link, hello-static, dummy.ko)", rep.Stripped, rep.Skipped)
	}

	again, err := Cleanup(ctx, root, CleanupOptions{Strip: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.StripSaved != 0 || len(again.Removed) != 0 {
		t.Errorf("second run saved %d bytes, removed %v", again.StripSaved, again.Removed)
	}
	if got := testutil.Run(t, "", nil, dyn); got != wantDyn {
		t.Errorf("after second run: %q", got)
	}
}

// TestCleanupUPX runs the real upx when it is installed. It is not in
// Debian 12, so on this project's machines it checks the warning that names
// the skipped step and that nothing changed.
func TestCleanupUPX(t *testing.T) {
	root := t.TempDir()
	bin := gcc(t, filepath.Join(root, "sbin/big"), helloC, "-static", "-lm")
	want := testutil.Run(t, "", nil, bin)
	before, _ := os.ReadFile(bin)
	rep, err := Cleanup(context.Background(), root, CleanupOptions{UPX: true, UPXBinaries: []string{"/sbin/big"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("upx"); err != nil {
		if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "UPX") || !strings.Contains(rep.Warnings[0], "/sbin/big") {
			t.Errorf("warnings = %q", rep.Warnings)
		}
		if after, _ := os.ReadFile(bin); !bytes.Equal(after, before) {
			t.Error("binary changed without upx")
		}
		return
	}
	if len(rep.Packed) != 1 || rep.UPXSaved <= 0 {
		t.Fatalf("packed %v, saved %d, skipped %v", rep.Packed, rep.UPXSaved, rep.Skipped)
	}
	if got := testutil.Run(t, "", nil, bin); got != want {
		t.Errorf("packed binary prints %q, want %q", got, want)
	}
}

// TestContractUPXInvocation stands in for upx, which cannot be installed
// here, with a script that records its arguments: it checks the command
// line, that output is verified before it replaces a binary, and that a
// bad output never does.
func TestContractUPXInvocation(t *testing.T) {
	stripTool := testutil.RequireTool(t, "strip")
	for _, tc := range []struct {
		name   string
		pack   string // shell producing $out from $in
		packed bool
	}{
		{name: "valid smaller ELF", pack: stripTool + ` -o "$out" "$in"`, packed: true},
		{name: "garbage output", pack: `echo garbage > "$out"`},
		{name: "upx fails", pack: `echo "upx: NotCompressibleException" >&2; exit 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, tools := t.TempDir(), t.TempDir()
			bin := gcc(t, filepath.Join(root, "usr/bin/app"), helloC, "-g", "-lm")
			want := testutil.Run(t, "", nil, bin)
			before, _ := os.ReadFile(bin)
			argsLog := filepath.Join(tools, "args")
			fake := filepath.Join(tools, "fake-upx")
			script := "#!/bin/sh\necho \"$*\" >> " + argsLog + "\n" +
				"if [ \"$1\" = -t ]; then exit 0; fi\n" +
				"out=$5; in=$6\n" + tc.pack + "\n"
			os.WriteFile(fake, []byte(script), 0o755)

			rep, err := Cleanup(context.Background(), root, CleanupOptions{UPX: true, UPXTool: fake, UPXBinaries: []string{"/usr/bin/app", "/usr/bin/absent"}})
			if err != nil {
				t.Fatal(err)
			}
			calls, _ := os.ReadFile(argsLog)
			first := strings.SplitN(string(calls), "\n", 2)[0]
			if want := "--best --lzma -q -o " + bin + upxTmpSuffix + " " + bin; first != want {
				t.Errorf("upx called as %q, want %q", first, want)
			}
			if !slices.ContainsFunc(rep.Skipped, func(s Skip) bool { return s.Path == "/usr/bin/absent" }) {
				t.Errorf("absent binary not reported: %v", rep.Skipped)
			}
			after, _ := os.ReadFile(bin)
			if tc.packed {
				if len(rep.Packed) != 1 || !strings.Contains(string(calls), "-t -q "+bin+upxTmpSuffix) {
					t.Errorf("packed %v; calls %q", rep.Packed, calls)
				}
			} else if !bytes.Equal(after, before) || len(rep.Packed) != 0 {
				t.Errorf("a failed upx changed the binary (packed %v)", rep.Packed)
			}
			if got := testutil.Run(t, "", nil, bin); got != want {
				t.Errorf("binary prints %q, want %q", got, want)
			}
			if leftovers, _ := filepath.Glob(filepath.Join(root, "usr/bin/*-tmp")); len(leftovers) != 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}
