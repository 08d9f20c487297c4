package config

import (
	"strings"
	"testing"
)

// TestSecretNeverInErrors is item 8: whatever is wrong with a line that
// assigns a secret (an unquoted space or ';', an unset $NAME inside it, an
// unclosed quote), the error names the file, the line and the key, and no
// part of the value.
func TestSecretNeverInErrors(t *testing.T) {
	const head = "S3_ENDPOINT=http://127.0.0.1:9000\nS3_BUCKET=zos\nS3_ACCESS_KEY=ak\n"
	tests := []struct {
		name, line string
		key        string
		words      []string // parts of the value that must not appear
	}{
		{"space", "S3_SECRET_KEY=firstword secondword", "S3_SECRET_KEY", []string{"firstword", "secondword"}},
		{"semicolon", "S3_SECRET_KEY=firstword;secondword", "S3_SECRET_KEY", []string{"firstword", "secondword"}},
		{"ampersand", "S3_SECRET_KEY=firstword&secondword", "S3_SECRET_KEY", []string{"firstword", "secondword"}},
		{"three words", "READ_SECRET_KEY=alpha123 beta456 gamma789", "READ_SECRET_KEY", []string{"alpha123", "beta456", "gamma789"}},
		{"access key", "READ_ACCESS_KEY=keyword1 keyword2", "READ_ACCESS_KEY", []string{"keyword1", "keyword2"}},
		{"export", "export S3_SECRET_KEY=firstword secondword", "S3_SECRET_KEY", []string{"firstword", "secondword"}},
		{"dollar", "S3_SECRET_KEY=pass$wordpart", "S3_SECRET_KEY", []string{"pass", "wordpart"}},
		{"braces", "S3_SECRET_KEY=pass${wordpart}", "S3_SECRET_KEY", []string{"pass", "wordpart"}},
		{"unclosed quote", "S3_SECRET_KEY=\"firstword secondword", "S3_SECRET_KEY", []string{"firstword", "secondword"}},
		{"unclosed single quote", "S3_SECRET_KEY='firstword secondword", "S3_SECRET_KEY", []string{"firstword", "secondword"}},
		{"paren", "S3_SECRET_KEY=qqqq(zzzz)yyyy", "S3_SECRET_KEY", []string{"qqqq", "zzzz", "yyyy"}},
		{"unknown password key", "MY_PASSWORD=firstword secondword", "MY_PASSWORD", []string{"firstword", "secondword"}},
		{"unknown token key", "API_TOKEN=firstword;secondword", "API_TOKEN", []string{"firstword", "secondword"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := project(t, map[string]string{"build.conf": "", "rfs.conf": head + tt.line + "\nROUTE_PATH=/x\n"})
			_, err := Load(Options{Root: root, Environ: []string{}})
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			for _, w := range tt.words {
				if strings.Contains(msg, w) {
					t.Errorf("error leaks %q: %s", w, msg)
				}
			}
			if !strings.Contains(msg, "config/rfs.conf:4") || !strings.Contains(msg, tt.key) {
				t.Errorf("error does not name the file, line and key: %s", msg)
			}
		})
	}
}
