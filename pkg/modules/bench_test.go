package modules

import (
	"os"
	"testing"
)

// BenchmarkResolveAll loads the Debian tree and resolves the closure of
// every one of its modules (about 4000): the number quoted in the notes.
func BenchmarkResolveAll(b *testing.B) {
	v := debianTree(b)
	for b.Loop() {
		ix, err := Load("/", v, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range ix.Names() {
			if _, err := ix.Depends(n); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkLoad is the share of BenchmarkResolveAll spent parsing the
// tree's metadata and checking it against the files on disk.
func BenchmarkLoad(b *testing.B) {
	v := debianTree(b)
	for b.Loop() {
		if _, err := Load("/", v, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadFromModinfo is the fallback when modules.dep is missing:
// every module's .modinfo is read.
func BenchmarkLoadFromModinfo(b *testing.B) {
	v := debianTree(b)
	root := b.TempDir()
	linkTree(b, "/lib/modules/"+v, root+"/lib/modules/"+v)
	if err := os.Remove(root + "/lib/modules/" + v + "/modules.dep"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ix, err := Load(root, v, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if ix.Source != SourceModinfo {
			b.Fatal("modules.dep was used")
		}
	}
}
