package modules

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
)

func TestCopyThenModprobeInDestination(t *testing.T) {
	v := debianTree(t)
	testutil.RequireTool(t, "depmod")
	src, err := Load("/", v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stage1 := []string{"virtio_net", "virtio-blk", "ext4", "xhci-pci", "unix"}
	stage2 := []string{"btrfs", "e1000e", "virtio_net"}
	plan, err := NewPlan(src, stage1, stage2)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	// A module of an earlier run that the plan no longer has.
	testutil.WriteFile(t, filepath.Join(dst, "lib/modules", v, "kernel/drivers/old/old.ko"), "stale", 0o644)
	testutil.WriteFile(t, filepath.Join(dst, "lib/modules/5.0.0-old/kernel/x.ko"), "other version", 0o644)
	ctx := context.Background()
	if err := Copy(ctx, plan, CopyOptions{SrcRoot: "/", DstRoot: dst}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(dst, "lib/modules", v)
	if got, want := moduleFiles(t, dir), sorted(plan.Files()); !slices.Equal(got, want) {
		t.Errorf("copied files:\n%v\nwant:\n%v", got, want)
	}
	for _, gone := range []string{filepath.Join(dir, "kernel/drivers/old"), filepath.Join(dst, "lib/modules/5.0.0-old")} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s survived: %v", gone, err)
		}
	}
	for _, f := range []string{"modules.dep", "modules.dep.bin", "modules.alias.bin", "modules.softdep", "modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		testutil.RequireFile(t, filepath.Join(dir, f))
	}
	// kmod's modprobe in the copy loads the same modules as on the source
	// (depmod may order independent dependencies differently), and exactly
	// what Depends says in the copy.
	cfg := emptyConfig(t)
	copied, err := Load(dst, v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append(slices.Clone(stage1), stage2...) {
		want, _ := modprobeDepends(t, "/", v, cfg, n)
		got, found := modprobeDepends(t, dst, v, cfg, n)
		if !found || !sameEntries(got, want) {
			t.Errorf("%s: modprobe in the copy:\n%swant:\n%s", n, entryLines(got), entryLines(want))
		}
		if ours, err := copied.Depends(n); err != nil || entryLines(ours) != entryLines(got) {
			t.Errorf("%s: Depends in the copy = %v, %v; modprobe:\n%s", n, ours, err, entryLines(got))
		}
	}
	inImage, err := NewPlan(copied, stage1, stage2)
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := inImage.StageLists()
	assertFile(t, filepath.Join(dst, Stage1ListPath), strings.Join(s1, "\n")+"\n")
	assertFile(t, filepath.Join(dst, Stage2ListPath), strings.Join(s2, "\n")+"\n")
	assertFile(t, filepath.Join(dst, KernelVersionPath), v+"\n")
	if s1[len(s1)-1] != "xhci_pci" || !slices.Contains(s1, "xhci_hcd") || slices.Index(s1, "xhci_hcd") > slices.Index(s1, "xhci_pci") {
		t.Errorf("stage 1 list is not dependencies first: %v", s1)
	}
	if slices.Contains(s2, "virtio_net") || !slices.Contains(s2, "btrfs") {
		t.Errorf("stage 2 list repeats stage 1 or misses btrfs: %v", s2)
	}

	// A second run with fewer modules removes the ones dropped.
	plan2, err := NewPlan(src, []string{"virtio_net"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Copy(ctx, plan2, CopyOptions{SrcRoot: "/", DstRoot: dst}); err != nil {
		t.Fatal(err)
	}
	if got, want := moduleFiles(t, dir), sorted(plan2.Files()); !slices.Equal(got, want) {
		t.Errorf("after the second run:\n%v\nwant:\n%v", got, want)
	}
	assertFile(t, filepath.Join(dst, Stage2ListPath), "")
	order, _ := os.ReadFile(filepath.Join(dir, "modules.order"))
	if strings.Contains(string(order), "btrfs") {
		t.Errorf("modules.order still lists btrfs")
	}
}

func moduleFiles(t *testing.T, dir string) []string {
	t.Helper()
	ix := &Index{Dir: dir}
	files, err := ix.scanModuleFiles()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for f := range files {
		out = append(out, f)
	}
	return sorted(out)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func assertFile(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
}
