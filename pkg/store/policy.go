package store

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/httpclient"
)

// ErrRouteRefused is wrapped when a RoutePolicy refuses a store URL, or the
// address a store's host name resolves to.
var ErrRouteRefused = errors.New("refused by the route policy")

// RoutePolicy says where the routes of an flist may send a reader. An
// flist comes from someone else, and its routes choose what the reader
// connects to: the zero policy refuses loopback addresses and dir://
// routes, and no policy allows link-local addresses (169.254.0.0/16,
// fe80::/10: the cloud metadata services live there) or the other
// well-known metadata addresses. Other addresses, private ones included,
// are allowed: blob stores often live on the local network. Host names are
// checked on the addresses they resolve to, when the connection is made.
type RoutePolicy struct {
	// AllowLoopback allows stores on loopback or unspecified addresses
	// (a local S3 server or web server).
	AllowLoopback bool
	// AllowDirs are the directories dir:// routes may read from (each
	// directory and everything below it); other dir:// routes are refused.
	AllowDirs []string
}

// metadataAddrs are cloud metadata endpoints outside the link-local ranges.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS, IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// nat64 is the well-known NAT64 prefix, which embeds an IPv4 address.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// CheckAddr returns an error wrapping ErrRouteRefused when the policy does
// not allow connecting to a.
func (p RoutePolicy) CheckAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	if nat64.Contains(a) {
		b := a.As16()
		if err := p.CheckAddr(netip.AddrFrom4([4]byte(b[12:]))); err != nil {
			return fmt.Errorf("%s embeds %w", a, err)
		}
	}
	switch {
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return fmt.Errorf("link-local address %s: %w", a, ErrRouteRefused)
	case a.IsMulticast():
		return fmt.Errorf("multicast address %s: %w", a, ErrRouteRefused)
	case isMetadata(a):
		return fmt.Errorf("cloud metadata address %s: %w", a, ErrRouteRefused)
	case (a.IsLoopback() || a.IsUnspecified() || a.Is4() && a.As4()[0] == 0) && !p.AllowLoopback:
		return fmt.Errorf("loopback address %s (not allowed unless asked): %w", a, ErrRouteRefused)
	}
	return nil
}

func isMetadata(a netip.Addr) bool {
	for _, m := range metadataAddrs {
		if a == m {
			return true
		}
	}
	return false
}

// checkDir returns an error wrapping ErrRouteRefused when a dir:// route to
// path is outside AllowDirs.
func (p RoutePolicy) checkDir(path string) error {
	path = filepath.Clean(path)
	for _, d := range p.AllowDirs {
		d = filepath.Clean(d)
		if path == d || strings.HasPrefix(path, strings.TrimSuffix(d, "/")+"/") {
			return nil
		}
	}
	allowed := "none allowed"
	if len(p.AllowDirs) > 0 {
		allowed = "allowed: " + strings.Join(p.AllowDirs, ", ")
	}
	return fmt.Errorf("dir:// route to %s (%s): %w", path, allowed, ErrRouteRefused)
}

// checkHost checks a URL's host when it is a literal address; names are
// checked when they are resolved, at connect time.
func (p RoutePolicy) checkHost(host string) error {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return nil
	}
	return p.CheckAddr(a)
}

// ParseRoutePolicy reads a comma-separated list of what to allow beyond the
// strict default: "loopback", and "dir:///abs/path" for each directory
// dir:// routes may read from. The empty string is the strict policy.
func ParseRoutePolicy(s string) (RoutePolicy, error) {
	var p RoutePolicy
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
		case item == "loopback":
			p.AllowLoopback = true
		case strings.HasPrefix(item, "dir://"):
			u, err := url.Parse(item)
			if err != nil || u.Host != "" || !filepath.IsAbs(u.Path) {
				return p, fmt.Errorf("allowed route %q: want dir:///absolute/path", item)
			}
			p.AllowDirs = append(p.AllowDirs, filepath.Clean(u.Path))
		default:
			return p, fmt.Errorf("allowed route %q: want loopback or dir:///absolute/path (link-local addresses are never allowed)", item)
		}
	}
	return p, nil
}

// Options configure how OpenWith connects.
type Options struct {
	// Timeouts bound every network wait of http(s) and s3 stores; zero
	// fields take httpclient's defaults.
	Timeouts httpclient.Timeouts
	// Policy, when set, restricts what the store may reach: set it for
	// routes read from an flist. Nil allows everything (stores the user
	// named).
	Policy *RoutePolicy
}

// transport is the HTTP transport configuration of a store opened with o.
func (o Options) transport(maxIdlePerHost int) httpclient.Options {
	h := httpclient.Options{Timeouts: o.Timeouts, MaxIdleConnsPerHost: maxIdlePerHost}
	if o.Policy != nil {
		h.Allow = o.Policy.CheckAddr
	}
	return h
}
