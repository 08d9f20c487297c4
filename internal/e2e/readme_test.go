package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/pkg/config"
)

// The README's stage graph is `mage graph`'s output, and its config
// reference names every key: neither may drift from the code.
func TestReadmeIsCurrent(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	graph, err := mage(t, root, nil, "graph")
	if err != nil {
		t.Fatalf("mage graph: %v\n%s", err, graph)
	}
	if !strings.Contains(string(readme), graph) {
		t.Errorf("README.md does not hold the current `mage graph` output; paste it:\n%s", graph)
	}
	build, rfs, cache := config.Reference()
	for _, k := range append(append(build, rfs...), cache...) {
		if !strings.Contains(string(readme), "| `"+k.Name+"` |") {
			t.Errorf("README.md's config reference has no row for %s", k.Name)
		}
	}
}
