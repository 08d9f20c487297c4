package components

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	conf := `# TYPE NAME SOURCE VERSION BUILD INSTALL_PATH [SHA256] [dynamic]
git    zinit    https://github.com/threefoldtech/zinit    v0.2.28  cargo-musl            /sbin/zinit
git    rfs      https://github.com/threefoldtech/rfs      v2.0.7   cargo-musl:features=build-binary  /usr/bin/rfs   # comment
git    mycelium https://github.com/threefoldtech/mycelium v0.7.10  cargo-musl:dir=myceliumd,bin=mycelium /usr/bin/mycelium

release corex   https://example.org/corex#frag 2.1.4 none /usr/bin/corex ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789
local  tool     tools/x   -        go:./cmd/x            /usr/bin/x dynamic
local  blob     bin/prebuilt -     none                  /usr/bin/blob
git    mk       ../repo   main     make:all,bin=out/mk   /usr/sbin/mk
git    sc       ../repo   abc123   script:scripts/b.sh   /usr/sbin/sc
`
	comps, err := Parse(strings.NewReader(conf), "config/sources.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(comps) != 8 {
		t.Fatalf("got %d components", len(comps))
	}
	z, rfs, my, corex, tool := comps[0], comps[1], comps[2], comps[3], comps[4]
	if z.Type != Git || z.Build.Kind != CargoMusl || z.InstallPath != "/sbin/zinit" || z.Where() != "config/sources.conf:2" {
		t.Errorf("zinit = %+v", z)
	}
	if strings.Join(rfs.Build.Features, ",") != "build-binary" || rfs.Line != 3 {
		t.Errorf("rfs = %+v", rfs)
	}
	if my.Build.Dir != "myceliumd" || my.Build.Bin != "mycelium" || my.Build.String() != "cargo-musl:dir=myceliumd,bin=mycelium" {
		t.Errorf("mycelium = %+v", my.Build)
	}
	if corex.Checksum != "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789" || corex.Source != "https://example.org/corex#frag" {
		t.Errorf("corex = %+v", corex)
	}
	if !tool.Dynamic || tool.Version != "" || tool.Build.Arg != "./cmd/x" || tool.Type != Local {
		t.Errorf("tool = %+v", tool)
	}
	if comps[6].Build.Arg != "all" || comps[6].Build.Bin != "out/mk" || comps[7].Build.Arg != "scripts/b.sh" {
		t.Errorf("make/script = %+v %+v", comps[6].Build, comps[7].Build)
	}
}

func TestParseErrors(t *testing.T) {
	sha := strings.Repeat("a", 64)
	tests := []struct{ line, want string }{
		{"git zinit url v1 cargo-musl", "got 5 fields"},
		{"svn zinit url v1 cargo-musl /sbin/zinit", `unknown TYPE "svn"`},
		{"git zinit url - cargo-musl /sbin/zinit", "needs a VERSION"},
		{"git zinit url v1 ninja /sbin/zinit", `unknown BUILD kind "ninja"`},
		{"git zinit url v1 cargo-musl sbin/zinit", "clean absolute path"},
		{"git zinit url v1 cargo-musl /sbin/../zinit", "clean absolute path"},
		{"release corex https://x/corex 1 none /usr/bin/corex", "needs a SHA256"},
		{"release corex https://x/corex 1 none /usr/bin/corex md5:1234", `unexpected field "md5:1234"`},
		{"release corex https://x/corex 1 none /usr/bin/corex sha1:" + strings.Repeat("a", 40), "unexpected field"},
		{"release corex ftp://x/corex 1 none /usr/bin/corex " + sha, "http, https or file URL"},
		{"release corex https://x/corex 1 go /usr/bin/corex " + sha, "BUILD must be none"},
		{"git zinit url v1 cargo-musl /sbin/zinit " + sha, "pins release downloads only"},
		{"git zinit url v1 cargo-musl /sbin/zinit static", `unexpected field "static"`},
		{"git zinit url v1 make:all /sbin/zinit", "make needs bin=PATH"},
		{"git zinit url v1 script /sbin/zinit", "want script:<path>"},
		{"git zinit url v1 cargo-musl:--evil /sbin/zinit", "invalid item"},
		{"git zinit url v1 cargo-musl:dir=../up /sbin/zinit", "relative path inside the source"},
		{"git zinit url v1 go:x,speed=fast /sbin/zinit", `unexpected item "speed=fast"`},
		{"git zi/nit url v1 go /sbin/zinit", "invalid component name"},
		{"git zinit --upload-pack=x v1 go /sbin/zinit", "must not start with '-'"},
	}
	for _, tt := range tests {
		_, err := Parse(strings.NewReader("# header\n"+tt.line+"\n"), "sources.conf")
		if err == nil || !strings.Contains(err.Error(), "sources.conf:2: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want sources.conf:2 and %q", tt.line, err, tt.want)
		}
	}
	// The original's separated lines are named as such, and every error
	// ends with the format and an example line.
	for _, line := range []string{
		"git:zinit:https://github.com/threefoldtech/zinit:v0.2.28:build_zinit",
		"git|zinit|https://github.com/threefoldtech/zinit|v0.2.28|build_zinit",
	} {
		_, err := Parse(strings.NewReader(line+"\n"), "config/sources.conf")
		want := []string{
			"config/sources.conf:1: got 1 fields, in the original's colon- or pipe-separated form, which is not read",
			"config/sources.conf: each line is TYPE NAME SOURCE VERSION BUILD INSTALL_PATH [SHA256] [dynamic], separated by blanks",
			"\n  git zinit https://github.com/threefoldtech/zinit v0.2.28 cargo-musl:zinit /sbin/zinit",
		}
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: err = %v, want %q", line, err, w)
			}
		}
	}
	if _, err := Parse(strings.NewReader(FormatExample+"\n"), "s.conf"); err != nil {
		t.Errorf("the example line does not parse: %v", err)
	}
	// Every bad line is reported, duplicates included.
	_, err := Parse(strings.NewReader("git a u v go /a\ngit a u v go /b\nbad\n"), "s.conf")
	if err == nil || !strings.Contains(err.Error(), "s.conf:2: component a already defined on line 1") || !strings.Contains(err.Error(), "s.conf:3:") {
		t.Errorf("err = %v", err)
	}
}
