package alpine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
)

// ConfigureOptions configure Configure. The zero value of each field but
// Source has a sensible default.
type ConfigureOptions struct {
	// Source names the mirror and branch written to /etc/apk/repositories.
	Source
	// Repositories lists the repositories to enable; nil means main and
	// community.
	Repositories []string
	// Hostname goes to /etc/hostname; empty means "zero-os".
	Hostname string
	// Nameservers go to /etc/resolv.conf; nil means 1.1.1.1 and 8.8.8.8
	// (the running system replaces the file once its network is up).
	Nameservers []string
}

// Replaced lists the paths (relative to the root) that Zero-OS replaces
// and Configure and Prune remove: busybox init's inittab (zinit is PID 1)
// and OpenRC's service scripts, runlevels and configuration (zinit units
// start the services).
func Replaced() []string {
	return []string{
		"etc/inittab",
		"etc/init.d",
		"etc/conf.d",
		"etc/runlevels",
		"etc/rc.conf",
		"etc/local.d",
	}
}

// DefaultRepositories are the repositories Configure enables by default.
var DefaultRepositories = []string{"main", "community"}

// Repositories is the text of an apk repositories file listing repos of
// the branch at the mirror, one URL a line.
func (s Source) Repositories(repos []string) string {
	var b strings.Builder
	for _, r := range repos {
		fmt.Fprintln(&b, s.RepositoryURL(r))
	}
	return b.String()
}

// Configure prepares an extracted minirootfs at root for Zero-OS: apk
// repositories, resolv.conf and hostname, and the removal of what Zero-OS
// replaces (Replaced). Every write stays inside root: a symlink in root
// pointing outside it makes Configure fail rather than follow it. Running it
// twice gives the same result.
func Configure(root string, opt ConfigureOptions) error {
	if opt.Mirror == "" || opt.Version == "" {
		return errors.New("alpine configure: mirror and version are required")
	}
	repos := opt.Repositories
	if repos == nil {
		repos = DefaultRepositories
	}
	hostname := opt.Hostname
	if hostname == "" {
		hostname = "zero-os"
	}
	ns := opt.Nameservers
	if ns == nil {
		ns = []string{"1.1.1.1", "8.8.8.8"}
	}
	var resolv strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&resolv, "nameserver %s\n", n)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("alpine configure: %w", err)
	}
	defer r.Close()
	for _, f := range []struct{ name, data string }{
		{"etc/apk/repositories", opt.Source.Repositories(repos)},
		{"etc/resolv.conf", resolv.String()},
		{"etc/hostname", hostname + "\n"},
	} {
		if err := fsutil.WriteFileIn(r, f.name, []byte(f.data), 0o644); err != nil {
			return fmt.Errorf("alpine configure %s: %w", root, err)
		}
	}
	if err := prune(r); err != nil {
		return fmt.Errorf("alpine configure %s: %w", root, err)
	}
	return nil
}

// Prune removes what Zero-OS replaces (Replaced) from root again; packages
// installed after Configure may have brought some of it back.
func Prune(root string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("alpine prune: %w", err)
	}
	defer r.Close()
	if err := prune(r); err != nil {
		return fmt.Errorf("alpine prune %s: %w", root, err)
	}
	return nil
}

func prune(r *os.Root) error {
	for _, p := range Replaced() {
		if err := r.RemoveAll(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
