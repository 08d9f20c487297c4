package flist

import (
	"os"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// localRoutes allows, explicitly, what the tests' flists route to:
// loopback servers (versitygw, httptest) and dir stores under the
// temporary directory.
var localRoutes = store.RoutePolicy{AllowLoopback: true, AllowDirs: []string{os.TempDir()}}

// makeTree is testutil.MakeTree: every file type pack handles, files at the
// block boundaries, duplicates, links, odd modes and, as root, owners and a
// device node.
func makeTree(t testing.TB, root string) {
	t.Helper()
	testutil.MakeTree(t, root)
}

// compareTrees is testutil.CompareTrees.
func compareTrees(t testing.TB, want, got string) {
	t.Helper()
	testutil.CompareTrees(t, want, got)
}
