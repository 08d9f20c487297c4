package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
	"github.com/threefoldtech/zosbuilder/pkg/kernel"
	"github.com/threefoldtech/zosbuilder/pkg/modules"
)

// TestOfflineKernel checks what kernel_modules and kernel_build made in the
// shared offline build, the kernel CI compiles: the module tree
// resolves like kmod's modprobe resolves it and does not point back into
// the build tree, and vmlinuz.efi carries the archive beside it, with its
// build id, and tells a stale archive or build id apart. (The boot tests
// then boot it.)
func TestOfflineKernel(t *testing.T) {
	b := SharedOffline(t)
	modprobe := testutil.RequireTool(t, "modprobe")
	ctx := context.Background()

	t.Run("modules-root resolves like modprobe", func(t *testing.T) {
		root := b.Path("work/offline/kernel/modules-root")
		versions, _ := filepath.Glob(filepath.Join(root, "lib/modules/*"))
		if len(versions) != 1 {
			t.Fatalf("modules-root has %d kernel versions %v, want 1", len(versions), versions)
		}
		full := filepath.Base(versions[0])
		for _, link := range []string{"build", "source"} {
			if _, err := os.Lstat(filepath.Join(versions[0], link)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("modules-root keeps the %s symlink into the build tree", link)
			}
		}
		ix, err := modules.Load(root, full, modules.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ix.Source != modules.SourceModulesDep {
			t.Fatalf("modules-root has no usable modules.dep (source %s)", ix.Source)
		}
		names := ix.Names()
		// An empty -C folder keeps the build host's modprobe.d out.
		noConfig := t.TempDir()
		prefix := "/lib/modules/" + full + "/"
		withDeps := 0
		for _, name := range names {
			seq, err := ix.Depends(name)
			if err != nil {
				t.Errorf("Depends(%s): %v", name, err)
				continue
			}
			var got []string
			for _, e := range seq {
				if e.Builtin {
					got = append(got, "builtin "+e.Name)
				} else {
					got = append(got, "insmod "+e.Path)
				}
			}
			out, err := exec.Command(modprobe, "-d", root, "-S", full, "-C", noConfig, "--show-depends", name).Output()
			if err != nil {
				t.Errorf("modprobe --show-depends %s: %v", name, err)
				continue
			}
			var want []string
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				kind, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
				if _, rel, ok := strings.Cut(arg, prefix); ok && kind == "insmod" {
					arg = rel
				}
				want = append(want, kind+" "+strings.TrimSpace(arg))
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: Depends = %q, modprobe = %q", name, got, want)
			}
			if len(seq) > 1 {
				withDeps++
			}
		}
		// virtio_net needs net_failover, which needs failover.
		if withDeps == 0 {
			t.Errorf("none of the %d modules %v has a dependency: the comparison proves little", len(names), names)
		}
		t.Logf("%d modules (%d with dependencies) resolved as modprobe does", len(names), withDeps)
	})

	t.Run("vmlinuz.efi embeds its archive", func(t *testing.T) {
		vmlinuz, archive := b.Path("work/offline/dist/vmlinuz.efi"), b.Path("work/offline/dist/initramfs.cpio.xz")
		id, err := kernel.VerifyEmbedded(ctx, vmlinuz, archive, "")
		if err != nil || id == "" {
			t.Fatalf("VerifyEmbedded = %q, %v", id, err)
		}
		if _, err := kernel.VerifyEmbedded(ctx, vmlinuz, archive, id); err != nil {
			t.Errorf("VerifyEmbedded with the archive's build id: %v", err)
		}
		packed, err := os.ReadFile(archive)
		if err != nil {
			t.Fatal(err)
		}
		if embedded, err := kernel.EmbeddedInitramfs(ctx, vmlinuz); err != nil || !bytes.HasPrefix(embedded, packed) {
			t.Errorf("EmbeddedInitramfs: %v (found %d bytes, want a copy of the %d of %s)", err, len(embedded), len(packed), archive)
		}
		// A build id that is not the archive's: the image is stale.
		if _, err := kernel.VerifyEmbedded(ctx, vmlinuz, archive, "not-"+id); !errors.Is(err, kernel.ErrStaleInitramfs) {
			t.Errorf("VerifyEmbedded with another build id: err = %v, want ErrStaleInitramfs", err)
		}
		// Another archive (a new initramfs, the kernel not relinked): the
		// error names the build id the kernel does carry.
		root := t.TempDir()
		testutil.WriteFile(t, filepath.Join(root, kernel.BuildIDPath), "newer-"+id+"\n", 0o644)
		newer := filepath.Join(t.TempDir(), "initramfs.cpio.xz")
		if err := initramfs.Pack(ctx, root, newer, initramfs.Options{}); err != nil {
			t.Fatal(err)
		}
		_, err = kernel.VerifyEmbedded(ctx, vmlinuz, newer, "newer-"+id)
		if !errors.Is(err, kernel.ErrStaleInitramfs) || !strings.Contains(err.Error(), `"`+id+`"`) {
			t.Errorf("old kernel, new archive: err = %v, want ErrStaleInitramfs naming %s", err, id)
		}
	})
}
