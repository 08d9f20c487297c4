package main

import (
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/pkg/flist"
)

// TestParse: rfs's command lines, as the units and people write them.
func TestParse(t *testing.T) {
	def := func(m mountOptions) *mountOptions {
		if m.cache == "" {
			m.cache = defaultCache
		}
		if m.cacheSize == 0 {
			m.cacheSize = flist.DefaultCacheSize
		}
		return &m
	}
	tests := []struct {
		args    string
		want    command
		wantErr string
	}{
		{"mount -m /etc/rfs/m.fl -c /var/cache/rfs/modules /lib/modules/6.12.44-Zero-OS",
			command{mount: def(mountOptions{meta: "/etc/rfs/m.fl", cache: "/var/cache/rfs/modules", target: "/lib/modules/6.12.44-Zero-OS"})}, ""},
		{"mount -m m.fl -c c -d t", command{mount: def(mountOptions{meta: "m.fl", cache: "c", daemon: true, target: "t"})}, ""},
		{"--debug --debug mount --meta=m.fl --daemon --log /var/log/rfs.log t",
			command{mount: def(mountOptions{meta: "m.fl", daemon: true, logFile: "/var/log/rfs.log", debug: 2, target: "t"})}, ""},
		// clap accepts options after the positional argument.
		{"mount t -m m.fl -d --debug", command{mount: def(mountOptions{meta: "m.fl", daemon: true, debug: 1, target: "t"})}, ""},
		{"mount -m m.fl --cache-size 1G t", command{mount: def(mountOptions{meta: "m.fl", cacheSize: 1 << 30, target: "t"})}, ""},
		{"mount -m m.fl --cache-size 512MiB t", command{mount: def(mountOptions{meta: "m.fl", cacheSize: 512 << 20, target: "t"})}, ""},
		{"mount -m m.fl --cache-size 1000000 t", command{mount: def(mountOptions{meta: "m.fl", cacheSize: 1e6, target: "t"})}, ""},
		{"mount -m m.fl --cache-size 99999999999T t", command{}, "too large"},
		{"mount -m m.fl --cache-size 0 t", command{mount: &mountOptions{meta: "m.fl", cache: defaultCache, target: "t"}}, ""},
		{"--version", command{version: true}, ""},
		{"-V", command{version: true}, ""},
		{"", command{}, "missing subcommand"},
		{"pack -m x.fl -s dir:///s src", command{}, `unknown subcommand "pack"`},
		{"mount t", command{}, "-m FL is required"},
		{"mount -m m.fl", command{}, "want one TARGET, got 0"},
		{"mount -m m.fl a b", command{}, "want one TARGET, got 2: a b"},
		{"mount -m m.fl --cache-size lots t", command{}, "want a size"},
		{"mount -m m.fl --cache-size 1.5G t", command{}, "want a size"},
		{"mount -m m.fl -x t", command{}, "flag provided but not defined: -x"},
	}
	for _, tt := range tests {
		var stderr strings.Builder
		got, err := parse(strings.Fields(tt.args), &stderr)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(stderr.String(), tt.wantErr) || !strings.Contains(stderr.String(), "Usage:") {
				t.Errorf("parse(%q): %v, stderr %q; want an error with %q and the usage", tt.args, err, stderr.String(), tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parse(%q): %v (%s)", tt.args, err, stderr.String())
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parse(%q) = %+v %+v, want %+v %+v", tt.args, got, got.mount, tt.want, tt.want.mount)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	for _, tt := range []struct {
		args string
		want int
	}{{"--version", 0}, {"--help", 0}, {"mount --help", 0}, {"", 2}, {"mount", 2}} {
		if got := run(strings.Fields(tt.args), io.Discard, io.Discard); got != tt.want {
			t.Errorf("rfs %s: exit %d, want %d", tt.args, got, tt.want)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	const info = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:32 / /lib/modules/6.12.44-Zero-OS ro,nosuid,nodev,relatime shared:20 - fuse.g8ufs 1234 ro,user_id=0,group_id=0,default_permissions,allow_other
37 22 0:33 / /mnt/with\040space\134x rw - tmpfs none rw
garbage
`
	got, err := parseMountinfo(strings.NewReader(info))
	if err != nil {
		t.Fatal(err)
	}
	want := []mountinfoLine{
		{point: "/", fstype: "ext4", source: "/dev/sda1"},
		{point: "/lib/modules/6.12.44-Zero-OS", fstype: "fuse.g8ufs", source: "1234"},
		{point: `/mnt/with space\x`, fstype: "tmpfs", source: "none"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseMountinfo = %+v, want %+v", got, want)
	}
	for in, want := range map[string]string{`a\040b`: "a b", `tab\011`: "tab\t", `\\`: `\\`, `end\04`: `end\04`, `x\999`: `x\999`} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}
