package config

import (
	"fmt"
	"os"

	"github.com/threefoldtech/zosbuilder/pkg/components"
)

// Component is one line of sources.conf; its format belongs to the
// components package, which parses it.
type Component = components.Component

func (c *Config) loadComponents() error {
	path := c.Path(SourcesFile)
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", c.rel(path), unwrapPathError(err))
	}
	defer f.Close()
	comps, err := components.Parse(f, c.rel(path))
	if err != nil {
		return err
	}
	c.Components = comps
	return nil
}
