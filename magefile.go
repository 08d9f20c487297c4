//go:build ignore

// The zero-install entry point: `go run magefile.go <target> [args]` behaves
// exactly like `mage <target> [args]`, for machines without mage installed.
// The build tag keeps mage from reading this file as a magefile; the targets
// live in magefiles/.
package main

import (
	"os"

	"github.com/magefile/mage/mage"
)

func main() { os.Exit(mage.Main()) }
