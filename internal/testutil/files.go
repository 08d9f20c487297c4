package testutil

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Must fails the test on a non-nil error.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// WriteFile writes content to path with mode, creating the folders on the
// way.
func WriteFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	Must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	Must(t, os.WriteFile(path, []byte(content), mode))
	Must(t, os.Chmod(path, mode)) // exactly mode, whatever the umask
}

// WriteTree writes files under dir: each name (slash-separated) gets its
// content with mode 0644; a name ending in "*" is written without the star
// with mode 0755, and one ending in "@" becomes a symlink, without the "@",
// to the content.
func WriteTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if link, ok := strings.CutSuffix(p, "@"); ok {
			Must(t, os.MkdirAll(filepath.Dir(link), 0o755))
			Must(t, os.Symlink(content, link))
			continue
		}
		mode := os.FileMode(0o644)
		if exe, ok := strings.CutSuffix(p, "*"); ok {
			p, mode = exe, 0o755
		}
		WriteFile(t, p, content, mode)
	}
}

// CopyFile copies src to dst with mode, creating dst's folders.
func CopyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	Must(t, err)
	defer in.Close()
	Must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	Must(t, err)
	_, err = io.Copy(out, in)
	Must(t, err)
	Must(t, out.Close())
	Must(t, os.Chmod(dst, mode))
}

// Run runs name with args in dir ("" for the current one) with stdin and
// returns its standard output; it fails the test, showing the standard
// error, when the command fails.
func Run(t testing.TB, dir string, stdin []byte, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
