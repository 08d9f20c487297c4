package modules

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

// realNames covers storage, NICs and their PHYs, virtio, USB, filesystems
// and networking, in both '-' and '_' spellings, plus aliases and built-ins.
var realNames = []string{
	// storage
	"ahci", "nvme", "sd_mod", "virtio_blk", "virtio_scsi", "megaraid_sas", "mpt3sas", "dm_crypt", "raid1", "nbd", "loop", "zram",
	// NICs and PHYs
	"e1000", "e1000e", "igb", "ixgbe", "i40e", "ice", "r8169", "tg3", "bnx2", "bnx2x", "mlx5_core", "mlx4_en",
	"virtio_net", "vmxnet3", "atlantic", "be2net", "qede", "bnxt_en", "realtek", "broadcom", "bcm_phy_lib",
	// virtio
	"virtio_pci", "virtio_console", "virtio_balloon", "virtio_rng", "9pnet_virtio",
	// USB and input
	"xhci_pci", "xhci-pci", "ehci_pci", "ohci-pci", "uhci_hcd", "usbhid", "usb_storage", "uas", "hid-generic",
	// filesystems
	"btrfs", "ext4", "xfs", "overlay", "fuse", "squashfs", "vfat", "nfs", "cifs", "9p",
	// networking
	"bridge", "8021q", "bonding", "tun", "veth", "vxlan", "wireguard", "nf_tables",
	// aliases (a softdep alias with two providers, a filesystem alias, a PCI modalias)
	"crypto-crc32c", "fs-btrfs", "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00",
	// built-in
	"unix", "ipv6", "crc32", "8250",
}

// TestDependsMatchesModprobe resolves in the installed tree and in a copy
// under a temporary root, as the build does with its own kernel's modules.
func TestDependsMatchesModprobe(t *testing.T) {
	v := debianTree(t)
	other := t.TempDir()
	linkTree(t, filepath.Join("/lib/modules", v), filepath.Join(other, "lib/modules", v))
	for _, root := range []string{"/", other} {
		ix, err := Load(root, v, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ix.Source != SourceModulesDep {
			t.Fatalf("%s: Source = %s, want %s", root, ix.Source, SourceModulesDep)
		}
		compareWithModprobe(t, ix, emptyConfig(t), realNames)
	}
}

// TestDependsWithConfig applies modprobe.d lines (alias, softdep pre and
// post, blacklist, the first softdep of a module winning) like modprobe -C.
func TestDependsWithConfig(t *testing.T) {
	v := debianTree(t)
	cfg := t.TempDir()
	testutil.WriteFile(t, filepath.Join(cfg, "a.conf"), "# test\nalias mynic e1000e\nsoftdep e1000e pre: crc32c_generic \\\n  post: vxlan\nsoftdep e1000e pre: tun\n", 0o644)
	testutil.WriteFile(t, filepath.Join(cfg, "b.conf"), "alias fs-* overlay\nblacklist nbd\nalias blocky nbd\nsoftdep virtio_* pre: loop\n", 0o644)
	testutil.WriteFile(t, filepath.Join(cfg, "ignored.txt"), "softdep igb pre: tun\n", 0o644)
	ix, err := Load("/", v, Options{ConfigPaths: []string{cfg}})
	if err != nil {
		t.Fatal(err)
	}
	compareWithModprobe(t, ix, cfg, []string{"mynic", "e1000e", "fs-btrfs", "blocky", "nbd", "igb", "virtio_net", "virtio_blk", "btrfs"})

	// modprobe lists nothing for a blacklisted alias; the build refuses it.
	if _, err := ix.Resolve([]string{"blocky"}); !errors.Is(err, ErrUnknownModule) {
		t.Errorf("Resolve(blacklisted alias) err = %v, want ErrUnknownModule", err)
	}

	noPost, err := Load("/", v, Options{ConfigPaths: []string{cfg}, IgnorePostSoftdeps: true})
	if err != nil {
		t.Fatal(err)
	}
	with, _ := ix.Depends("e1000e")
	without, _ := noPost.Depends("e1000e")
	if !slices.ContainsFunc(with, func(e Entry) bool { return e.Name == "vxlan" }) ||
		slices.ContainsFunc(without, func(e Entry) bool { return e.Name == "vxlan" }) ||
		without[len(without)-1].Name != "e1000e" {
		t.Errorf("post softdep vxlan: with %v, without %v", with, without)
	}
}

func TestResolveUnion(t *testing.T) {
	v := debianTree(t)
	c, err := Resolve("/", v, []string{"ext4", "btrfs", "unix", "xhci-pci"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, e := range c.Entries {
		if _, dup := pos[e.Name]; dup {
			t.Errorf("%s listed twice", e.Name)
		}
		pos[e.Name] = i
	}
	// Every module comes after what modprobe loads before it.
	for _, n := range []string{"ext4", "btrfs", "xhci_pci"} {
		seq, _ := modprobeDepends(t, "/", v, emptyConfig(t), n)
		for i := 1; i < len(seq); i++ {
			if pos[seq[i-1].Name] > pos[seq[i].Name] && seq[i].Name == NameFromPath(n) {
				t.Errorf("%s loads before its dependency %s", seq[i].Name, seq[i-1].Name)
			}
		}
		if _, ok := pos[NameFromPath(n)]; !ok {
			t.Errorf("%s missing from the closure", n)
		}
	}
	if !slices.Equal(c.Builtin(), []string{"unix"}) {
		t.Errorf("Builtin() = %v, want [unix]", c.Builtin())
	}
	if !slices.Contains(c.Lines(), "builtin:unix") || !slices.Contains(c.Lines(), ix(t, v).Path("xhci_pci")) {
		t.Errorf("Lines() = %v", c.Lines())
	}
}

func ix(t *testing.T, v string) *Index {
	t.Helper()
	i, err := Load("/", v, Options{NoStaleCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestUnknownModuleNearest(t *testing.T) {
	v := debianTree(t)
	_, err := Resolve("/", v, []string{"xhci_pcx", "e1000e", "virtio-nett"}, Options{})
	if !errors.Is(err, ErrUnknownModule) {
		t.Fatalf("err = %v, want ErrUnknownModule", err)
	}
	var ue *UnknownError
	if !errors.As(err, &ue) || ue.Name != "xhci_pcx" {
		t.Fatalf("first UnknownError = %+v", ue)
	}
	if ue.Nearest[0] != "xhci_pci" {
		t.Errorf("nearest to xhci_pcx = %v, want xhci_pci first", ue.Nearest)
	}
	if !strings.Contains(err.Error(), "virtio-nett") || !strings.Contains(err.Error(), "virtio_net") {
		t.Errorf("error does not name virtio-nett and its nearest virtio_net: %v", err)
	}
	if strings.Contains(err.Error(), "e1000e not found") {
		t.Errorf("known module reported: %v", err)
	}
}

func TestBuiltinIsNotMissing(t *testing.T) {
	v := debianTree(t)
	c, err := Resolve("/", v, []string{"unix", "ipv6"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Name: "unix", Builtin: true}, {Name: "ipv6", Builtin: true}}
	if !slices.Equal(c.Entries, want) {
		t.Errorf("Entries = %v, want %v", c.Entries, want)
	}
	if len(c.Modules()) != 0 {
		t.Errorf("Modules() = %v, want none", c.Modules())
	}
}

// TestStaleModulesDepFallsBackToModinfo removes modules.dep, then makes it
// stale with an extra module: both times the dependencies come from
// .modinfo and give the same modules as modprobe on the real tree, each
// after the modules it needs.
func TestStaleModulesDepFallsBackToModinfo(t *testing.T) {
	v := debianTree(t)
	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules", v)
	linkTree(t, filepath.Join("/lib/modules", v), dir)
	if err := os.Remove(filepath.Join(dir, "modules.dep")); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T) {
		ix, err := Load(root, v, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ix.Source != SourceModinfo {
			t.Fatalf("Source = %s, want %s", ix.Source, SourceModinfo)
		}
		cfg := emptyConfig(t)
		for _, n := range realNames {
			want, _ := modprobeDepends(t, "/", v, cfg, n)
			got, err := ix.Depends(n)
			if err != nil {
				t.Errorf("%s: %v", n, err)
				continue
			}
			if !sameSet(got, want) {
				t.Errorf("%s: modules from .modinfo differ from modprobe\ngot:\n%swant:\n%s", n, entryLines(got), entryLines(want))
			}
			assertDepsFirst(t, ix, got)
		}
	}
	t.Run("missing", check)
	// A stale modules.dep: the real one, and a module file it does not list.
	testutil.CopyFile(t, filepath.Join("/lib/modules", v, "modules.dep"), filepath.Join(dir, "modules.dep"), 0o644)
	testutil.CopyFile(t, filepath.Join(dir, ix(t, v).Path("dummy")), filepath.Join(dir, "extra/dummy2.ko"), 0o644)
	t.Run("stale", check)
}

func sameSet(a, b []Entry) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	cmp := func(p, q Entry) int { return strings.Compare(p.String(), q.String()) }
	slices.SortFunc(x, cmp)
	slices.SortFunc(y, cmp)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// assertDepsFirst checks that every module's depends= modules come before it.
func assertDepsFirst(t *testing.T, ix *Index, seq []Entry) {
	t.Helper()
	pos := map[string]int{}
	for i, e := range seq {
		if _, ok := pos[e.Name]; !ok {
			pos[e.Name] = i
		}
	}
	for _, e := range seq {
		if e.Builtin {
			continue
		}
		mi, err := ReadModinfo(filepath.Join(ix.Dir, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range mi.Depends() {
			if p, ok := pos[d]; !ok || p > pos[e.Name] {
				t.Errorf("%s comes before its dependency %s", e.Name, d)
			}
		}
	}
}

func TestFnmatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"pci:v00008086d*sv*sd*bc*sc*i*", "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00", true},
		{"pci:v00008086d*sv*sd*bc*sc*i*", "pci:v000010ECd00008168sv0sd0bc02sc00i00", false},
		{"fs-*", "fs-btrfs", true},
		{"a/*", "a/b/c", true}, // '*' crosses '/' without FNM_PATHNAME
		{"virtio_?et", "virtio_net", true},
		{"dmi*:rvn[Ll]enovo*", "dmi:bvn:rvnlenovo:x", true},
		{"x[!a-c]y", "xby", false},
		{"x[!a-c]y", "xdy", true},
		{"x[]]y", "x]y", true},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"abc", "abcd", false},
		{"*", "", true},
	} {
		if got := fnmatch(c.p, c.s); got != c.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"xhci-pci":         "xhci_pci",
		"hid_generic":      "hid_generic",
		"pci:v*d[0-9a-f]*": "pci:v*d[0-9a-f]*",
		"a-b[x-y]c-d":      "a_b[x-y]c_d",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
	if got := NameFromPath("kernel/drivers/usb/host/xhci-pci.ko.zst"); got != "xhci_pci" {
		t.Errorf("NameFromPath = %q", got)
	}
}

// linkTree hard-links (or copies, across file systems) a directory tree.
func linkTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			return nil
		}
		if err := os.Link(p, target); err != nil {
			testutil.CopyFile(t, p, target, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestModulesConfResolves resolves every entry of the repository's
// config/modules.conf against Debian's tree, compared with modprobe. The
// format is parsed here in three lines; pkg/config owns the real parser.
func TestModulesConfResolves(t *testing.T) {
	v := debianTree(t)
	data, err := os.ReadFile("../../config/modules.conf")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Split(strings.TrimSpace(line), ":"); len(f) >= 2 && (f[0] == "stage1" || f[0] == "stage2") {
			names = append(names, f[1])
		}
	}
	if len(names) < 30 {
		t.Fatalf("modules.conf has %d entries", len(names))
	}
	ix, err := Load("/", v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Resolve(names); err != nil {
		t.Fatal(err)
	}
	compareWithModprobe(t, ix, emptyConfig(t), names)
}

// TestCompressedModules compresses part of a tree (xz and zstd, the formats
// kmod reads here): first modules.dep is stale and .modinfo is read from
// the compressed files, then depmod indexes them and Depends must match
// modprobe again.
func TestCompressedModules(t *testing.T) {
	v := debianTree(t)
	testutil.RequireTool(t, "depmod")
	xzBin := testutil.RequireTool(t, "xz")
	zstdBin := testutil.RequireTool(t, "zstd")
	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules", v)
	linkTree(t, filepath.Join("/lib/modules", v), dir)
	src := ix(t, v)
	for i, m := range []string{"jbd2", "mbcache", "crc16", "ext4", "virtio_net", "net_failover"} {
		p := filepath.Join(dir, src.Path(m))
		tool, ext := xzBin, ".xz"
		args := []string{"-c", "--check=crc32"}
		if i%2 == 1 {
			tool, ext, args = zstdBin, ".zst", []string{"-q", "-c"}
		}
		out, err := exec.Command(tool, append(args, p)...).Output()
		if err != nil {
			t.Fatalf("%s %s: %v", tool, p, err)
		}
		testutil.WriteFile(t, p+ext, string(out), 0o644)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"ext4", "virtio_net", "btrfs"}
	stale, err := Load(root, v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if stale.Source != SourceModinfo {
		t.Fatalf("Source = %s, want %s", stale.Source, SourceModinfo)
	}
	for _, n := range names {
		got, err := stale.Depends(n)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := modprobeDepends(t, "/", v, emptyConfig(t), n)
		for i := range want {
			want[i].Path = stale.Path(want[i].Name)
		}
		if !sameSet(got, want) {
			t.Errorf("%s from .modinfo:\n%swant:\n%s", n, entryLines(got), entryLines(want))
		}
	}
	testutil.Run(t, "", nil, "depmod", "-b", root, v)
	fresh, err := Load(root, v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Source != SourceModulesDep || !strings.HasSuffix(fresh.Path("jbd2"), ".ko.xz") || !strings.HasSuffix(fresh.Path("mbcache"), ".ko.zst") {
		t.Fatalf("after depmod: Source %s, jbd2 %s, mbcache %s", fresh.Source, fresh.Path("jbd2"), fresh.Path("mbcache"))
	}
	compareWithModprobe(t, fresh, emptyConfig(t), names)
}
