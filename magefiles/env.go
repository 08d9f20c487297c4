//go:build mage

package main

import (
	"sync"

	"github.com/magefile/mage/mg"

	"github.com/threefoldtech/zosbuilder/internal/pipeline"
	"github.com/threefoldtech/zosbuilder/internal/procs"
)

// The targets' goroutines spend much of their time in blocking file system
// calls (flist packs above all): see internal/procs.
func init() { procs.ForBlockingIO() }

var loaded struct {
	once sync.Once
	env  *pipeline.Env
	err  error
}

// load returns the process's pipeline env, reading the config on first use.
// A config error fails every target before anything is written.
func load() (*pipeline.Env, error) {
	loaded.once.Do(func() {
		loaded.env, loaded.err = pipeline.Load(pipeline.Options{Verbose: mg.Verbose() || mg.Debug()})
	})
	return loaded.env, loaded.err
}
