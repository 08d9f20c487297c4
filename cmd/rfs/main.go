// Command rfs is the node side of threefoldtech/rfs, built from this
// project's flist code: it mounts an rfs flist read-only with FUSE, with the
// command line and the behaviour of rfs v2's mount subcommand, so the
// Zero-OS units that run `rfs mount -m FL -c CACHE [-d] TARGET` can use it
// in place of the Rust binary:
//
//	rfs [--debug]... mount -m FL [-c CACHE] [-d] [-l LOG] [--cache-size SIZE] TARGET
//	rfs --version
//
// It refuses a TARGET that is already a mount point, mounts read-only with
// allow_other and default_permissions (source <pid>, type fuse.g8ufs, as
// rfs), with the mount syscall when run as root, so no fusermount binary is
// needed. With -d it returns once the mount is live and keeps serving in the
// background. Every block is checked against its id and key before a byte of
// it is returned (a tampered blob reads as EIO), store errors are retried
// with backoff, and the local block cache is bounded.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/flist"
)

// version is set at link time (-ldflags "-X main.version=..."); otherwise
// the module version recorded in the binary is used.
var version string

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage is returned for a bad command line; its message was printed.
var errUsage = errors.New("usage")

// run is the whole program; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cmd, err := parse(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "rfs: %v\n", err)
		}
		return 2
	}
	switch {
	case cmd.version:
		fmt.Fprintf(stdout, "rfs %s (zosbuilder, Go)\n", versionString())
		return 0
	case cmd.mount != nil:
		if err := mountCommand(cmd.mount, stderr); err != nil {
			fmt.Fprintf(stderr, "rfs: %v\n", err)
			return 1
		}
		return 0
	}
	return 0
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// command is a parsed command line.
type command struct {
	version bool
	mount   *mountOptions
}

// mountOptions are the arguments of `rfs mount`.
type mountOptions struct {
	meta      string // -m: the flist
	cache     string // -c: the block cache directory
	cacheSize int64  // --cache-size; 0: unbounded
	daemon    bool   // -d
	logFile   string // -l
	debug     int    // --debug, counted: 1 debug, 2 trace
	target    string
}

// defaultCache is rfs's default cache directory.
const defaultCache = "/tmp/cache"

const usage = `Usage:
  rfs [--debug]... mount -m FL [-c CACHE] [-d] [-l LOG] [--cache-size SIZE] TARGET
  rfs --version

Mounts the flist FL read-only at TARGET with FUSE (rfs v2's mount).

  -m, --meta FL        the flist (.fl) to mount
  -c, --cache CACHE    block cache directory (default /tmp/cache)
      --cache-size SZ  bound of the cache's content, e.g. 512M or 1G; 0 means
                       unbounded (default 256MiB)
  -d, --daemon         return once the mount is live and serve in the background
  -l, --log LOG        append the log to LOG instead of stderr
      --debug          more log output; twice logs every FUSE request
  -V, --version        print the version
`

// debugCount is a counted boolean flag: every --debug adds one.
type debugCount struct{ n *int }

func (d debugCount) String() string {
	if d.n == nil {
		return "0"
	}
	return strconv.Itoa(*d.n)
}

func (d debugCount) Set(string) error { *d.n++; return nil }

func (d debugCount) IsBoolFlag() bool { return true }

// byteSize is a --cache-size value: a byte count with an optional binary
// unit, as truncate(1) and du(1) read them (K, M, G, T; 1K = 1024).
type byteSize struct{ n *int64 }

func (b byteSize) String() string {
	if b.n == nil {
		return ""
	}
	return strconv.FormatInt(*b.n, 10)
}

func (b byteSize) Set(s string) error {
	m := sizeRe.FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("want a size such as 256M or 1G, got %q", s)
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	shift := 0
	if m[2] != "" {
		shift = 10 * (1 + strings.Index("KMGT", strings.ToUpper(m[2])))
	}
	if err != nil || v > math.MaxInt64>>shift {
		return fmt.Errorf("size %q is too large", s)
	}
	*b.n = v << shift
	return nil
}

var sizeRe = regexp.MustCompile(`^([0-9]+)(?:([KkMmGgTt])(?:i?B)?)?$`)

// parse reads the command line the way rfs's clap parser does for these
// options: flags may come before or after the subcommand's TARGET, and
// --debug may be given before the subcommand.
func parse(args []string, stderr io.Writer) (command, error) {
	var cmd command
	mo := &mountOptions{cache: defaultCache, cacheSize: flist.DefaultCacheSize}

	top := flag.NewFlagSet("rfs", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	top.Var(debugCount{&mo.debug}, "debug", "")
	top.BoolVar(&cmd.version, "version", false, "")
	top.BoolVar(&cmd.version, "V", false, "")
	if err := top.Parse(args); err != nil {
		return cmd, usageError(stderr, err)
	}
	if cmd.version {
		return cmd, nil
	}
	rest := top.Args()
	if len(rest) == 0 {
		return cmd, usageError(stderr, errors.New("missing subcommand"))
	}
	if rest[0] != "mount" {
		return cmd, usageError(stderr, fmt.Errorf("unknown subcommand %q: this rfs only mounts (pack with `mage rfs:pack`)", rest[0]))
	}

	fs := flag.NewFlagSet("rfs mount", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, name := range []string{"m", "meta"} {
		fs.StringVar(&mo.meta, name, "", "")
	}
	for _, name := range []string{"c", "cache"} {
		fs.StringVar(&mo.cache, name, mo.cache, "")
	}
	for _, name := range []string{"d", "daemon"} {
		fs.BoolVar(&mo.daemon, name, false, "")
	}
	for _, name := range []string{"l", "log"} {
		fs.StringVar(&mo.logFile, name, "", "")
	}
	fs.Var(byteSize{&mo.cacheSize}, "cache-size", "")
	fs.Var(debugCount{&mo.debug}, "debug", "")
	var positional []string
	for rest = rest[1:]; ; {
		if err := fs.Parse(rest); err != nil {
			return cmd, usageError(stderr, err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		rest = rest[1:]
	}
	switch {
	case mo.meta == "":
		return cmd, usageError(stderr, errors.New("mount: -m FL is required"))
	case len(positional) != 1:
		return cmd, usageError(stderr, fmt.Errorf("mount: want one TARGET, got %d: %s", len(positional), strings.Join(positional, " ")))
	case mo.cache == "":
		return cmd, usageError(stderr, errors.New("mount: -c needs a directory"))
	}
	mo.target = positional[0]
	cmd.mount = mo
	return cmd, nil
}

// usageError prints err and the usage (just the usage for -h) and returns
// errUsage, or flag.ErrHelp.
func usageError(stderr io.Writer, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, usage)
		return err
	}
	fmt.Fprintf(stderr, "rfs: %v\n\n%s", err, usage)
	return errUsage
}

// logLevel maps the --debug count to rfs's levels: info, debug, trace.
func logLevel(debug int) logrus.Level {
	switch {
	case debug >= 2:
		return logrus.TraceLevel
	case debug == 1:
		return logrus.DebugLevel
	}
	return logrus.InfoLevel
}
