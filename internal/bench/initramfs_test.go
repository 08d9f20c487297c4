package bench

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// TestInitramfsRuns runs the harness on a small tree: every variant must
// work and print its row (the numbers are for the README, not asserted).
func TestInitramfsRuns(t *testing.T) {
	for _, tool := range []string{"xz", "cpio", "find", "sh"} {
		testutil.RequireTool(t, tool)
	}
	tree := t.TempDir()
	testutil.WriteTree(t, tree, map[string]string{
		"init*":            "#!/bin/sh\nexec /sbin/zinit init\n",
		"sbin/zinit*":      "\x7fELF not really zinit\n",
		"bin/sh@":          "busybox",
		"lib/big.so":       strings.Repeat("0123456789abcdef", 4096),
		"etc/hostname":     "zos\n",
		"etc/zinit/a.yaml": "exec: a\n",
	})
	var buf bytes.Buffer
	testutil.Must(t, Initramfs(context.Background(), tree, &buf))
	if rows := regexp.MustCompile(`(?m)^\| (shell|Pack).* \| \d+ \|`).FindAllString(buf.String(), -1); len(rows) != 6 {
		t.Errorf("want 6 result rows:\n%s", buf.String())
	}
}
