package modules

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzIndex feeds arbitrary modules.dep, modules.softdep, modules.alias and
// modules.builtin files to Load and resolves the modules it lists: nothing
// panics or loops (dependency and softdep cycles included), every entry is
// a module file or a built-in, and a closure names every module once. The seed corpus
// (testdata/fuzz/FuzzIndex) is an excerpt of Debian 12's real files. Run
// longer with
//
//	go test -run '^$' -fuzz '^FuzzIndex$' -fuzztime 5m ./pkg/modules
func FuzzIndex(f *testing.F) {
	f.Add([]byte("kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n"), []byte("softdep a pre: b post: a\nsoftdep b pre: a\n"), []byte("alias x* a\n"), []byte("kernel/c.ko\n"))
	f.Add([]byte("kernel/a.ko:\n"), []byte("   \n\t\nsoftdep\nblacklist\n"), []byte(""), []byte(""))
	f.Add([]byte("kernel/a.ko:\n"), []byte(""), []byte("alias\n"), []byte(""))
	f.Add([]byte("no colon here\n"), []byte("softdep a pre:\\\n b\n"), []byte("alias a-b c_d\nalias [ab]* a\n"), []byte("kernel/a.ko"))
	f.Fuzz(func(t *testing.T, dep, softdep, alias, builtin []byte) {
		root := t.TempDir()
		dir := filepath.Join(root, "lib", "modules", "6.1.0-fuzz")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{"modules.dep": dep, "modules.softdep": softdep, "modules.alias": alias, "modules.builtin": builtin} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ix, err := Load(root, "6.1.0-fuzz", Options{NoStaleCheck: true})
		if err != nil {
			return
		}
		names := ix.Names()
		for _, n := range names[:min(len(names), 32)] {
			seq, err := ix.Depends(n)
			if err != nil {
				continue
			}
			for _, e := range seq {
				if e.Name == "" || e.Builtin == (e.Path != "") {
					t.Fatalf("%s: entry %+v", n, e)
				}
			}
		}
		c, _ := ix.Resolve(names[:min(len(names), 8)])
		seen := map[string]bool{}
		for _, e := range c.Entries {
			if seen[e.Name] {
				t.Fatalf("%s twice in the closure %v", e.Name, c.Lines())
			}
			seen[e.Name] = true
		}
	})
}
