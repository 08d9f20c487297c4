package redact

import (
	"strings"
	"testing"
)

func TestMaskURL(t *testing.T) {
	tests := []struct{ in, want string }{
		// downloads, git sources: all user information may be a token
		{"https://dl-cdn.alpinelinux.org/alpine/v3.22/", "https://dl-cdn.alpinelinux.org/alpine/v3.22/"},
		{"https://u:p@host/x", "https://***@host/x"},
		{"https://tok@host/x", "https://***@host/x"},
		{"https://TOKEN:x-oauth-basic@github.com/o/r.git", "https://***@github.com/o/r.git"},
		{"https://host/x?a=1&access_key=k&Signature=s", "https://host/x?a=1&access_key=***&Signature=***"},
		{"https://host/x?X-Amz-Credential=c&X-Amz-Security-Token=t", "https://host/x?X-Amz-Credential=***&X-Amz-Security-Token=***"},
		{"https://u:p@host/%zz?token=t", "https://***@host/%zz"}, // does not parse: user information and query go
		{"file:///usr/src/linux.tar.xz", "file:///usr/src/linux.tar.xz"},
		// store routes: an S3 user name is an access key id, kept
		{"s3://read:s3cr3t@gw.example.org:443/blobs?region=garage", "s3://read:***@gw.example.org:443/blobs?region=garage"},
		{"s3s://read:s3cr3t@gw.example.org:443/blobs", "s3s://read:***@gw.example.org:443/blobs"},
		{"s3://read@gw:9000/blobs", "s3://read@gw:9000/blobs"},
		{"dir:///tmp/store0", "dir:///tmp/store0"},
		{"https://mirror.example.org/blobs", "https://mirror.example.org/blobs"},
		{"server://http://localhost:8080?token=eyJhbGciOi", "server://http://localhost:8080?token=***"},
		{"https://h/b?X-Amz-Signature=abc&region=r#frag", "https://h/b?X-Amz-Signature=***&region=r#frag"},
		{"s3://k:p%zz@h:9000/b", "s3://***@h:9000/b"}, // does not parse: all user info goes
		{"k:topsecret@h", "***"},
	}
	for _, tt := range tests {
		if got := MaskURL(tt.in); got != tt.want {
			t.Errorf("MaskURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Whatever the URL, a password never survives MaskURL.
func TestMaskURLHidesPasswords(t *testing.T) {
	for _, tt := range []struct{ in, secret string }{
		{"s3://k:topsecret@h:9000/b", "topsecret"},
		{"s3://k:top/secret@h:9000/b", "top/secret"},    // unescaped '/' does not parse
		{"s3://k:top secret%zz@h:9000/b", "top secret"}, // bad escape
		{"k:topsecret@h", "topsecret"},
		{"zdb://ns:topsecret@h:9900/ns", "topsecret"},
		{"https://h/x?password=topsecret#x", "topsecret"},
	} {
		if got := MaskURL(tt.in); strings.Contains(got, tt.secret) || strings.Contains(got, "secret") {
			t.Errorf("MaskURL(%q) = %q still holds the secret", tt.in, got)
		}
	}
}

func TestStripURL(t *testing.T) {
	for in, want := range map[string]string{
		"s3://KEY:SECRET@s3.example.org:9000/blobs?region=garage":     "s3://s3.example.org:9000/blobs?region=garage",
		"https://user:p%40ss@git.example.org/x.git":                   "https://git.example.org/x.git",
		"zdb://host:9900/ns?password=hunter2&region=r":                "zdb://host:9900/ns?region=r",
		"http://host/path?token=abc":                                  "http://host/path",
		"http://host/path#access_token=abc":                           "http://host/path",
		"git@github.com:threefoldtech/zinit.git":                      "git@github.com:threefoldtech/zinit.git",
		"work/offline/repos/fakezinit":                                "work/offline/repos/fakezinit",
		"dir:///var/store":                                            "dir:///var/store",
		"https://github.com/threefoldtech/zinit.git":                  "https://github.com/threefoldtech/zinit.git",
		"s3://READKEY:READSECRET@gw.example.org:443/blobs?region=x#a": "s3://gw.example.org:443/blobs?region=x",
	} {
		if got := StripURL(in); got != want {
			t.Errorf("StripURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSecrets(t *testing.T) {
	if got := Secrets("a=KEY b=KEY", []string{"KEY", ""}); got != "a=*** b=***" {
		t.Errorf("Secrets = %q", got)
	}
}
