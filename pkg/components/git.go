package components

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// syncGit brings the checkout at dir to the component's VERSION without
// ever discarding work: a missing checkout is cloned; one with uncommitted
// changes, or with commits no remote branch or tag holds, is built as it is
// after a warning; only a clean one is fetched and checked out.
func (b *builder) syncGit(ctx context.Context, dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return b.clone(ctx, dir)
	}
	if _, err := b.git(ctx, dir, "rev-parse", "--is-inside-work-tree"); err != nil {
		b.log.Warnf("%s is not a git checkout: building it as it is", dir)
		return nil
	}
	if why, err := b.localWork(ctx, dir); err != nil {
		return err
	} else if why != "" {
		b.log.Warnf("%s has %s: building it as it is, VERSION %s not checked out", dir, why, b.c.Version)
		fmt.Fprintf(b.out, "warning: %s; VERSION %s not checked out\n", why, b.c.Version)
		return nil
	}
	head, err := b.git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	// Pinned and already there: no network needed.
	if rev, err := b.resolve(ctx, dir); err == nil && rev == head && !b.isBranch(ctx, dir) {
		return nil
	}
	if _, err := b.git(ctx, dir, "fetch", "--tags", "--force", "origin"); err != nil {
		if _, rerr := b.resolve(ctx, dir); rerr != nil {
			return err
		}
		b.log.Warnf("fetch in %s failed, using what is there: %s", dir, err)
	}
	return b.checkout(ctx, dir)
}

// localWork says what in the checkout would be lost by a checkout: "" when
// nothing.
func (b *builder) localWork(ctx context.Context, dir string) (string, error) {
	status, err := b.git(ctx, dir, "status", "--porcelain", "--untracked-files=normal")
	if err != nil {
		return "", err
	}
	if status != "" {
		return "local changes", nil
	}
	refs, err := b.git(ctx, dir, "for-each-ref", "--contains", "HEAD", "--format=%(refname)", "refs/remotes", "refs/tags")
	if err != nil {
		return "", err
	}
	if refs == "" {
		return "local commits no remote branch or tag holds", nil
	}
	return "", nil
}

// clone clones into a temporary directory renamed into place, so an
// interrupted clone is started over instead of taken for a checkout.
func (b *builder) clone(ctx context.Context, dir string) error {
	tmp := dir + ".clone-tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if _, err := b.git(ctx, filepath.Dir(dir), "clone", "--no-checkout", "--", b.cloneURL(), tmp); err != nil {
		return err
	}
	if err := b.checkout(ctx, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// resolve returns the commit VERSION names: a remote branch first (so a
// branch follows its remote), then a tag or commit.
func (b *builder) resolve(ctx context.Context, dir string) (string, error) {
	if rev, err := b.git(ctx, dir, "rev-parse", "--verify", "-q", "refs/remotes/origin/"+b.c.Version+"^{commit}"); err == nil {
		return rev, nil
	}
	rev, err := b.git(ctx, dir, "rev-parse", "--verify", "-q", b.c.Version+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("VERSION %s is no branch, tag or commit of %s", b.c.Version, b.c.Source)
	}
	return rev, nil
}

func (b *builder) isBranch(ctx context.Context, dir string) bool {
	_, err := b.git(ctx, dir, "rev-parse", "--verify", "-q", "refs/remotes/origin/"+b.c.Version)
	return err == nil
}

func (b *builder) checkout(ctx context.Context, dir string) error {
	rev, err := b.resolve(ctx, dir)
	if err != nil {
		return err
	}
	_, err = b.git(ctx, dir, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", rev)
	return err
}

// cloneURL is SOURCE, with a relative local path taken from the project
// root rather than from the work directory git runs in.
func (b *builder) cloneURL() string {
	src := b.c.Source
	if strings.Contains(src, "://") || strings.Contains(src, "@") || filepath.IsAbs(src) || b.opt.ProjectRoot == "" {
		return src
	}
	return filepath.Join(b.opt.ProjectRoot, src)
}
