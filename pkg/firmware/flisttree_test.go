package firmware

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// FlistTree finds firmware in a packed flist's manifest as the kernel's
// loader would find it under the mounted flist: compressed variants,
// wildcards, symlinks (relative, absolute into /lib/firmware, through a
// folder), never outside the tree.
func TestFlistTreeFind(t *testing.T) {
	src := t.TempDir()
	testutil.WriteFile(t, filepath.Join(src, "rtl_nic/rtl8168h-2.fw"), "a", 0o644)
	testutil.WriteFile(t, filepath.Join(src, "iwlwifi-cc-a0-72.ucode.zst"), "b", 0o644)
	testutil.WriteFile(t, filepath.Join(src, "qcom/sm8250/adsp.mbn.xz"), "c", 0o644)
	for link, target := range map[string]string{
		"rtl_nic/alias.fw":    "rtl8168h-2.fw",
		"abs.fw":              "/lib/firmware/rtl_nic/rtl8168h-2.fw",
		"qcom/current":        "sm8250",
		"outside.fw":          "../etc/passwd",
		"elsewhere.fw":        "/etc/passwd",
		"dangling.fw":         "rtl_nic/nothing.fw",
		"loop-a.fw":           "loop-b.fw",
		"loop-b.fw":           "loop-a.fw",
		"dir-link-to-dir.fw":  "qcom",
		"rtl_nic/parent.fw":   "../rtl_nic/rtl8168h-2.fw",
		"rtl_nic/escapes2.fw": "../../x",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(src, link)), 0o755)
		if err := os.Symlink(target, filepath.Join(src, link)); err != nil {
			t.Fatal(err)
		}
	}
	fl := filepath.Join(t.TempDir(), "fw.fl")
	if _, err := flist.Pack(t.Context(), src, fl, flist.PackOptions{Store: store.NewDir(t.TempDir())}); err != nil {
		t.Fatal(err)
	}
	tree, err := FlistTree(t.Context(), fl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		fw, want string
		ok       bool
	}{
		{"rtl_nic/rtl8168h-2.fw", "rtl_nic/rtl8168h-2.fw", true},
		{"iwlwifi-cc-a0-72.ucode", "iwlwifi-cc-a0-72.ucode.zst", true},
		{"qcom/sm8250/adsp.mbn", "qcom/sm8250/adsp.mbn.xz", true},
		{"qcom/current/adsp.mbn", "qcom/current/adsp.mbn.xz", true},
		{"rtl_nic/alias.fw", "rtl_nic/alias.fw", true},
		{"rtl_nic/parent.fw", "rtl_nic/parent.fw", true},
		{"abs.fw", "abs.fw", true},
		{"rtl_nic/rtl82*.fw", "", false},
		{"rtl_nic/rtl8168*.fw", "rtl_nic/rtl8168h-2.fw", true},
		{"outside.fw", "", false},
		{"elsewhere.fw", "", false},
		{"dangling.fw", "", false},
		{"loop-a.fw", "", false},
		{"dir-link-to-dir.fw", "", false}, // a folder, not a file
		{"rtl_nic/escapes2.fw", "", false},
		{"../rtl_nic/rtl8168h-2.fw", "", false},
		{"rtl_nic", "", false},
		{"missing.fw", "", false},
	} {
		got, ok := tree.Find(tt.fw)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Find(%q) = %q, %v; want %q, %v", tt.fw, got, ok, tt.want, tt.ok)
		}
	}
}

func TestPackedFlist(t *testing.T) {
	dir := t.TempDir()
	if fl, err := PackedFlist(dir, "firmware-20250101.fl"); err != nil || fl != "" {
		t.Errorf("empty dir: %q, %v", fl, err)
	}
	old, newer := filepath.Join(dir, "firmware-20240101.fl"), filepath.Join(dir, "firmware-20240202.fl")
	testutil.WriteFile(t, old, "", 0o644)
	testutil.WriteFile(t, newer, "", 0o644)
	os.Chtimes(old, time.Now(), time.Now())
	os.Chtimes(newer, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))
	if fl, _ := PackedFlist(dir, "firmware-20250101.fl"); fl != old {
		t.Errorf("newest by mtime: %q, want %q", fl, old)
	}
	if fl, _ := PackedFlist(dir, "firmware-20240202.fl"); fl != newer {
		t.Errorf("by name: %q, want %q", fl, newer)
	}
}
