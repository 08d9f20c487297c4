//go:build mage

package main

import "context"

// runStage runs a stage after every stage it depends on, through the
// pipeline's scheduler: independent stages run in parallel and the first
// failure stops the others (mg.Deps would wait for every sibling).
func runStage(ctx context.Context, name string) error {
	e, err := load()
	if err != nil {
		return err
	}
	return e.Run(ctx, name)
}
