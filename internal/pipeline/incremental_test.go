package pipeline

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/firmware"
)

// The stages after alpine_extract edit INSTALL_DIR in place, and what some
// of them did a rerun cannot take back (alpineExtract says which). A change
// of those inputs must restart the image from the minirootfs, so that the
// incremental build ends as a clean one; every other change must not (a
// zinit edit reruns zinit_setup onwards, never the Alpine stages).
func TestChangesThatRebuildTheImageFromScratch(t *testing.T) {
	editLine := func(file, old, new string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			t.Helper()
			p := filepath.Join(root, "config", file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), old) {
				t.Fatalf("%s has no %q", p, old)
			}
			if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	firmwareFile := func(entry string, remove bool) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			t.Helper()
			p := filepath.Join(root, "firmware", entry, "blob.fw")
			if remove {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(time.Now().String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tt := range []struct {
		name    string
		setup   func(t *testing.T, root string) // before the first build
		edit    func(t *testing.T, root string)
		environ []string
		restart bool // alpine_extract reruns
		reruns  string
	}{
		{name: "package removed", edit: editLine(config.PackagesFile, "\nbusybox-binsh\n", "\n"), restart: true},
		{name: "firmware entry removed", edit: editLine(config.FirmwareFile, "\nbnx2x\n", "\n"), restart: true},
		{name: "component removed", edit: editLine(config.SourcesFile, "release  corex", "# release  corex"), restart: true},
		{name: "firmware folder filled: the entry leaves its package", edit: firmwareFile("bnx2x", false), restart: true},
		{name: "firmware folder emptied: the entry goes to its package", setup: firmwareFile("bnx2x", false), edit: firmwareFile("bnx2x", true), restart: true},
		{name: "ENABLE_STRIP changed", environ: []string{"ENABLE_STRIP=false"}, restart: true},
		{name: "ENABLE_UPX changed", environ: []string{"ENABLE_UPX=false"}, restart: true},
		{name: "ZEROOS_BRANDING changed", environ: []string{"ZEROOS_BRANDING=false"}, restart: true},
		// Reruns that replace what they own.
		{name: "component version changed", edit: editLine(config.SourcesFile, "v0.2.28", "v0.2.29"), reruns: "components_build"},
		{name: "module removed", edit: editLine(config.ModulesFile, "stage1:virtio_blk\n", ""), reruns: "modules_setup"},
		{name: "init changed", edit: editLine(config.InitFile, "#!/bin/sh", "#!/bin/sh\n# edited"), reruns: "init_script"},
		{name: "INITRAMFS_COMPRESSION changed", environ: []string{"INITRAMFS_COMPRESSION=go"}, reruns: "initramfs_create"},
		{name: "firmware file changed", setup: firmwareFile("bnx2x", false), edit: firmwareFile("bnx2x", false), reruns: "alpine_firmware"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := project(t, false)
			if tt.setup != nil {
				tt.setup(t, root)
			}
			ran := buildWithNoops(t, root, nil)
			if tt.edit != nil {
				tt.edit(t, root)
			}
			ran = buildWithNoops(t, root, tt.environ)
			if _, got := ran.Load("alpine_extract"); got != tt.restart {
				t.Errorf("alpine_extract ran = %v, want %v", got, tt.restart)
			}
			if _, got := ran.Load("kernel_build"); !got {
				t.Error("kernel_build did not rerun")
			}
			if tt.reruns != "" {
				if _, got := ran.Load(tt.reruns); !got {
					t.Errorf("%s did not rerun", tt.reruns)
				}
			}
		})
	}
}

// buildWithNoops runs every stage of root's project, each doing nothing but
// create its outputs (noop), and returns the stages that ran.
func buildWithNoops(t *testing.T, root string, environ []string) *sync.Map {
	t.Helper()
	e := load(t, root, environ...)
	defer e.engine.Close()
	var ran sync.Map
	if err := e.engine.RunGraph(context.Background(), noopStages(e, &ran), "kernel_build"); err != nil {
		t.Fatal(err)
	}
	return &ran
}

// A firmware report names what was missing when it was written: once
// nothing is, a rerun removes it rather than leave the old list in dist/.
func TestFirmwareReportGoesWhenNothingIsMissing(t *testing.T) {
	e := load(t, project(t, false))
	full, err := e.fullVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.cfg.InstallDir, "lib", "modules", full), 0o755); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(e.cfg.DistDir, "firmware-report.txt")
	if err := os.MkdirAll(e.cfg.DistDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(report, []byte("missing rtl_nic/rtl8168h-2.fw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.reportFirmware(context.Background(), e.log, firmware.DirTree(t.TempDir())); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(report); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the stale %s is still there (%v)", report, err)
	}
}
