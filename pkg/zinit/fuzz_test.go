package zinit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzUnits feeds two arbitrary unit files, a.yaml and b.yaml, to Parse and
// to LoadDir (so `after` references, cycles and script references between
// them are checked too): nothing panics, every problem names its file, and
// a unit that parses is named after its file. The seeds are the project's
// own units. Run longer with
//
//	go test -run '^$' -fuzz '^FuzzUnits$' -fuzztime 5m ./pkg/zinit
func FuzzUnits(f *testing.F) {
	real, _ := filepath.Glob(filepath.Join("..", "..", "zinit", "*.yaml"))
	if len(real) == 0 {
		f.Fatal("no units in zinit/")
	}
	var units [][]byte
	for _, p := range real {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		units = append(units, b)
	}
	for i, u := range units {
		f.Add(u, units[(i+1)%len(units)])
	}
	f.Add([]byte("exec: x\nafter: [b]\n"), []byte("exec: y\nafter:\n  - a\n"))
	f.Add([]byte("exec: /bin/sh /etc/zinit/init/missing.sh\nsignal:\n  stop: sigkill\n"), []byte("exec: y\nlog: ring\n"))
	f.Add([]byte("exec: x\nafter: a\ntest: &x [*x]\n"), []byte("{"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		u, _, err := Parse("/etc/zinit/a.yaml", a)
		if u != nil && u.Name != "a" {
			t.Fatalf("unit of a.yaml is named %q", u.Name)
		}
		for _, p := range Problems(err) {
			if p.File == "" {
				t.Fatalf("problem without a file: %v", p)
			}
		}
		dir := t.TempDir()
		for name, data := range map[string][]byte{"a.yaml": a, "b.yaml": b} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s, err := LoadDir(dir)
		if s == nil {
			t.Fatal("no set")
		}
		for _, p := range Problems(err) {
			if !strings.HasPrefix(p.File, dir) {
				t.Fatalf("problem outside the set's files: %v", p)
			}
		}
	})
}
