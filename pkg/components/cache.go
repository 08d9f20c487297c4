package components

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/cache"
	"github.com/threefoldtech/zosbuilder/pkg/download"
)

// cacheable reports whether a component is compiled here (a prebuilt
// binary is only downloaded: the download cache covers it).
func cacheable(c Component) bool { return c.Build.Kind != None }

// artifact is the component's entry in the artifact cache: its binary.
func (b *builder) artifact(recipe *cache.Recipe) cache.Artifact {
	return cache.Artifact{Recipe: recipe, Parts: []cache.Part{{Name: "bin", Path: b.opt.Artifact(b.c)}}, Log: b.log}
}

// recipe is what makes the component's binary: the source's content (a
// git tree id, local changes included, or the sha256 of a local tree), the
// sources.conf build line (not SOURCE or VERSION: the revision says what
// they resolved to), the toolchain of the build kind and the target.
func (b *builder) recipe(ctx context.Context, src string) (*cache.Recipe, error) {
	rev, err := b.sourceID(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("source identity: %w", err)
	}
	r := cache.NewRecipe("components_build", b.c.Name).
		Add("type", string(b.c.Type)).
		Add("source", rev).
		Add("build", b.c.Build.String()).
		Add("install", b.c.InstallPath)
	if len(b.opt.Env) > 0 {
		env := append([]string(nil), b.opt.Env...)
		sort.Strings(env)
		r.Add("env", strings.Join(env, " "))
	}
	dir := filepath.Join(src, b.c.Build.Dir)
	var tools [][]string
	switch b.c.Build.Kind {
	case CargoMusl:
		r.Add("target", RustTarget)
		tools = [][]string{{"cargo", "cargo", "--version"}, {"rustc", "rustc", "-vV"}, {"cc", "cc", "--version"}}
	case Go:
		r.Add("target", "GOOS=linux GOARCH=amd64 CGO_ENABLED=0 -trimpath")
		tools = [][]string{{"go", "go", "version"}, {"go env", "go", "env", "GOAMD64", "GOFLAGS", "GOEXPERIMENT"}}
	case Make:
		tools = [][]string{{"cc", "cc", "--version"}, {"make", "make", "--version"}}
	case Script:
		sum, err := download.HashFile(b.scriptPath())
		if err != nil {
			return nil, fmt.Errorf("build script: %w", err)
		}
		r.Add("script", "sha256 "+sum)
		tools = [][]string{{"cc", "cc", "--version"}}
	}
	for _, t := range tools {
		if err := r.AddTool(ctx, dir, t[0], t[1], t[2:]...); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// revision names the source by content: the git tree id of a checkout
// (with local changes, the tree they would commit), or the sha256 of a
// local folder that is not in git.
func (b *builder) revision(ctx context.Context, src string) (string, error) {
	if _, err := b.git(ctx, src, "rev-parse", "--git-dir"); err != nil {
		sum, err := hashTree(src)
		if err != nil {
			return "", err
		}
		return "sha256 " + sum, nil
	}
	top, err := b.git(ctx, src, "rev-parse", "--show-toplevel")
	if err != nil {
		return "", err
	}
	prefix, err := b.git(ctx, src, "rev-parse", "--show-prefix")
	if err != nil {
		return "", err
	}
	tree, err := b.worktreeID(ctx, top)
	if err != nil {
		return "", err
	}
	if prefix = strings.TrimSuffix(prefix, "/"); prefix != "" {
		if tree, err = b.git(ctx, top, "rev-parse", tree+":"+prefix); err != nil {
			return "", err
		}
	}
	return "git tree " + tree, nil
}

// worktreeID is HEAD's tree when the checkout is clean, else the tree of
// the work tree as `git add -A` would stage it, written through a scratch
// index so the checkout's own index is left alone.
func (b *builder) worktreeID(ctx context.Context, top string) (string, error) {
	status, err := b.git(ctx, top, "status", "--porcelain")
	if err != nil {
		return "", err
	}
	if status == "" {
		return b.git(ctx, top, "rev-parse", "HEAD^{tree}")
	}
	idx, err := os.CreateTemp("", "zosbuilder-index-")
	if err != nil {
		return "", err
	}
	idx.Close()
	defer os.Remove(idx.Name())
	env := []string{"GIT_INDEX_FILE=" + idx.Name()}
	for _, args := range [][]string{{"read-tree", "HEAD"}, {"add", "-A"}} {
		if _, err := b.gitEnv(ctx, top, env, args...); err != nil {
			return "", err
		}
	}
	return b.gitEnv(ctx, top, env, "write-tree")
}

func (b *builder) gitEnv(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GIT_TERMINAL_PROMPT=0"), env...)
	cmd.Stderr = b.out
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// hashTree hashes a folder's names, kinds, executable bits, symlink
// targets and file contents, in lexical order; .git folders are left out.
// sourceID is revision, except for a local Go component (the project's own
// mounter, whose source is the project root): there it is the content of
// exactly the files it compiles (the stage's inputs, see Inputs), so that
// neither the rest of the project nor the build's work folders inside it
// change the key.
func (b *builder) sourceID(ctx context.Context, src string) (string, error) {
	if b.c.Type != Local || b.c.Build.Kind != Go {
		return b.revision(ctx, src)
	}
	files, err := goInputs(ctx, src, filepath.Join(src, b.c.Build.Dir), b.c.Build.Arg)
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		rel, err := filepath.Rel(src, f)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = f // a file outside the source (none for a module in it)
		}
		err = hashFile(h, rel, f)
		if errors.Is(err, fs.ErrNotExist) { // go.sum of a module without dependencies
			fmt.Fprintf(h, "- %s\x00", rel)
			err = nil
		}
		if err != nil {
			return "", err
		}
	}
	return "go files sha256 " + hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile adds a regular file's name, executable bits, size and content.
func hashFile(h io.Writer, rel, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "f %s\x00%o\x00%d\x00", rel, fi.Mode().Perm()&0o111, fi.Size())
	_, err = io.Copy(h, f)
	return err
}

func hashTree(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			fmt.Fprintf(h, "d %s\x00", rel)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l %s\x00%s\x00", rel, target)
		case fi.Mode().IsRegular():
			return hashFile(h, rel, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
