package components

import (
	"context"
	"fmt"
	"io"
)

// Revision returns the commit the checkout of a git component is at, with
// "-dirty" when it has local changes (built as it is, see Build); "" for
// release and local components. It reads the checkout Build used, so it
// names what was built.
func (o Options) Revision(ctx context.Context, c Component) (string, error) {
	if c.Type != Git {
		return "", nil
	}
	b := &builder{c: c, opt: o, out: io.Discard}
	dir := o.checkoutDir(c)
	rev, err := b.git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return "", fmt.Errorf("component %s: revision of %s: %w", c.Name, dir, err)
	}
	if status, err := b.git(ctx, dir, "status", "--porcelain", "--untracked-files=normal"); err != nil {
		return "", fmt.Errorf("component %s: %w", c.Name, err)
	} else if status != "" {
		rev += "-dirty"
	}
	return rev, nil
}
