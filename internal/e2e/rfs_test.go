package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/internal/s3test"
	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/config"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/kernel"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// debianModules is the module tree of Debian's kernel package (.ci/run
// installs linux-image-amd64): thousands of real files.
func debianModules(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/lib/modules/*/kernel")
	if len(dirs) == 0 {
		testutil.Missing(t, "no /lib/modules/*/kernel (apt-get install linux-image-amd64)")
	}
	return filepath.Dir(dirs[0])
}

// verify-flist.sh on a large flist: under pipefail the shim used to die in
// `rfs:tree | head -n 50` before the verify ran. Now it shows the inspect
// summary, the first 50 tree lines and the verify report, and exits 0; and
// `mage rfs:tree FL | head` itself succeeds under pipefail.
func TestCompatibilityVerifyFlistLargeTree(t *testing.T) {
	testutil.Slow(t)
	root := repoRoot(t)
	src := debianModules(t)
	work := t.TempDir()
	fl := filepath.Join(work, "modules.fl")
	out, err := mage(t, root, nil, "rfs:pack", src, fl, "dir://"+filepath.Join(work, "store"))
	if err != nil {
		t.Fatalf("rfs:pack: %v\n%s", err, out)
	}
	summary := regexp.MustCompile(regexp.QuoteMeta(fl) + ` \(\d.*\): (\d+) files .*; (\d+) blobs new .*, 0 already in the store; [\d.]+ MB/s in `)
	m := summary.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rfs:pack printed no summary line:\n%s", out)
	}
	files, _ := strconv.Atoi(m[1])
	if files < 1000 {
		t.Fatalf("only %d files in %s: not a large tree", files, src)
	}

	// The store is outside the build's own: the route policy refuses it
	// unless allowed.
	out, err = run(t, root, []string{"ALLOW_ROUTES=dir://" + filepath.Join(work, "store")}, "scripts/rfs/verify-flist.sh", fl)
	if err != nil {
		t.Fatalf("verify-flist.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Flist Inspection: " + fl, "Files: " + m[1] + "\n", // inspect's summary
		"📁 /\n", "more entries (mage rfs:tree " + fl + ")", // the head of the tree
		m[1] + " files, ", ": 0 missing, 0 corrupt, 0 inconsistent", // verify ran, and passed
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify-flist.sh output lacks %q", want)
		}
	}
	treeLines := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.ContainsAny(l, "📁📄🔗❓") {
			treeLines++
		}
	}
	if treeLines != 50 {
		t.Errorf("verify-flist.sh printed %d tree lines, want the first 50", treeLines)
	}

	goTool := testutil.RequireTool(t, "go")
	for _, target := range []string{"rfs:tree", "rfs:inspect"} {
		out, err = run(t, root, nil, "bash", "-c", `set -o pipefail; "$0" run magefile.go `+target+` "$1" | head -n 2`, goTool, fl)
		if err != nil || strings.Count(out, "\n") != 2 {
			t.Errorf("%s FL | head -n 2 under pipefail: %v\n%s", target, err, out)
		}
	}
}

// patch-stores.sh: the original's default (the route of rfs.conf), list,
// add an HTTPS row, delete by the listed (masked) URL, and a refused edit,
// on an flist rfs itself wrote. No output shows a secret.
func TestCompatibilityPatchStores(t *testing.T) {
	dir := cloneRepo(t)
	const secret = "r34d-0nly-s3cr3t"
	conf := `S3_ENDPOINT="http://s3.example.org:3900"
S3_BUCKET="zos"
S3_ACCESS_KEY="write-key"
S3_SECRET_KEY="wr1t3-s3cr3t"
READ_ACCESS_KEY="read-key"
READ_SECRET_KEY="` + secret + `"
ROUTE_ENDPOINT="https://gw.example.org"
`
	if err := os.WriteFile(filepath.Join(dir, "config", "rfs.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(dir, "pkg", "flist", "testdata", "alpine-latest.fl"))
	if err != nil {
		t.Fatal(err)
	}
	fl := filepath.Join(t.TempDir(), "alpine.fl")
	if err := os.WriteFile(fl, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	routes := func() []store.Route {
		t.Helper()
		r, err := flist.ListRoutes(context.Background(), fl)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	gw := "s3s://read-key:" + secret + "@gw.example.org:443/blobs?region=garage"
	shownGW := "s3s://read-key:***@gw.example.org:443/blobs?region=garage"
	steps := []struct {
		args   []string
		fails  bool
		listed string // the listing printed
		urls   []string
	}{
		{args: []string{"list"}, listed: "routes:\n\trange:[0-255] store:dir:///tmp/store0\n", urls: []string{"dir:///tmp/store0"}},
		{args: nil, listed: "routes:\n\trange:[0-255] store:" + shownGW + "\n", urls: []string{gw}},
		{args: []string{"add", "https://mirror.example.org/blobs"}, urls: []string{gw, "https://mirror.example.org/blobs"},
			listed: "routes:\n\trange:[0-255] store:" + shownGW + "\n\trange:[0-255] store:https://mirror.example.org/blobs\n"},
		{args: []string{"delete", shownGW}, urls: []string{"https://mirror.example.org/blobs"},
			listed: "routes:\n\trange:[0-255] store:https://mirror.example.org/blobs\n"},
		{args: []string{"set", "00-7f=rfs.conf"}, fails: true, urls: []string{"https://mirror.example.org/blobs"}},
		{args: []string{"set", "00-7f=rfs.conf,80-ff=https://mirror.example.org/blobs"}, urls: []string{gw, "https://mirror.example.org/blobs"},
			listed: "routes:\n\trange:[0-127] store:" + shownGW + "\n\trange:[128-255] store:https://mirror.example.org/blobs\n"},
	}
	for _, s := range steps {
		out, err := run(t, dir, nil, "scripts/rfs/patch-stores.sh", append([]string{fl}, s.args...)...)
		if (err != nil) != s.fails {
			t.Fatalf("patch-stores.sh %v: %v\n%s", s.args, err, out)
		}
		if strings.Contains(out, secret) {
			t.Errorf("patch-stores.sh %v shows the secret:\n%s", s.args, out)
		}
		if s.listed != "" && !strings.Contains(out, s.listed) {
			t.Errorf("patch-stores.sh %v printed:\n%s\nwant the listing:\n%s", s.args, out, s.listed)
		}
		var urls []string
		for _, r := range routes() {
			urls = append(urls, r.URL)
		}
		if strings.Join(urls, " ") != strings.Join(s.urls, " ") {
			t.Errorf("after patch-stores.sh %v the flist routes to %v, want %v", s.args, urls, s.urls)
		}
	}
	if out, err := run(t, dir, nil, "scripts/rfs/patch-stores.sh", fl, "rotate"); err == nil || !strings.Contains(out, "unknown action: rotate") {
		t.Errorf("unknown action: %v\n%s", err, out)
	}
}

// pack-modules.sh and pack-firmware.sh upload their manifests to the
// bucket when UPLOAD_MANIFESTS=true, as the original did, and end with one
// summary line; a second pack uploads no blob.
func TestCompatibilityPackScriptsUploadManifests(t *testing.T) {
	srv := s3test.StartT(t)
	if err := srv.CreateBucket(context.Background(), "zos"); err != nil {
		t.Fatal(err)
	}
	dir := cloneRepo(t)
	conf := `S3_ENDPOINT="` + srv.Endpoint() + `"
S3_REGION="` + s3test.Region + `"
S3_BUCKET="zos"
S3_PREFIX="blobs"
S3_ACCESS_KEY="` + srv.AccessKey + `"
S3_SECRET_KEY="` + srv.SecretKey + `"
ROUTE_PATH="/zos/blobs"
MANIFESTS_SUBPATH="manifests"
UPLOAD_MANIFESTS="true"
`
	if err := os.WriteFile(filepath.Join(dir, "config", "rfs.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	full, err := kernel.FullVersion(cfg.KernelVersion, cfg.Path(config.KernelConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	mods := t.TempDir()
	fw := t.TempDir()
	for p, content := range map[string]string{
		filepath.Join(mods, "lib/modules", full, "kernel/drivers/net/fake.ko"): strings.Repeat("module ", 100000),
		filepath.Join(mods, "lib/modules", full, "modules.dep"):                "kernel/drivers/net/fake.ko:\n",
		filepath.Join(fw, "rtl_nic/rtl8168h-2.fw"):                             strings.Repeat("firmware ", 1000),
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// FIRMWARE_FLIST_SOURCE=local: the full set would need Alpine's mirror.
	env := []string{"KERNEL_MODULES_DIR=" + mods, "FIRMWARE_DIR=" + fw, "FIRMWARE_TAG=e2e", "FIRMWARE_FLIST_SOURCE=local"}
	for _, c := range []struct{ script, name string }{
		{"scripts/rfs/pack-modules.sh", "modules-" + full + ".fl"},
		{"scripts/rfs/pack-firmware.sh", "firmware-e2e.fl"},
	} {
		local := filepath.Join(dir, "dist", "flists", c.name)
		for i, newBlobs := range []string{`[1-9]\d*`, "0"} {
			out, err := run(t, dir, env, c.script)
			if err != nil {
				t.Fatalf("%s (run %d): %v\n%s", c.script, i+1, err, out)
			}
			if strings.Contains(out, srv.SecretKey) {
				t.Errorf("%s shows the secret:\n%s", c.script, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			want := regexp.MustCompile(regexp.QuoteMeta(local) + ` \(\d[\d.]* [kM]?B\): \d+ files \(.*\), .*; ` + newBlobs + ` blobs new \(.*\), \d+ already in the store; ` +
				`[\d.]+ MB/s in .*; manifest uploaded to ` + regexp.QuoteMeta(srv.Endpoint()+"/zos/manifests/"+c.name) + `$`)
			if !want.MatchString(last) {
				t.Errorf("%s (run %d) ends with\n%s\nwant the summary line %s\nwhole output:\n%s", c.script, i+1, last, want, out)
			}
		}
		uploaded, err := os.ReadFile(filepath.Join(srv.Dir, "zos", "manifests", c.name))
		if err != nil {
			t.Fatalf("manifest not in the bucket: %v", err)
		}
		if packed, err := os.ReadFile(local); err != nil || !bytes.Equal(uploaded, packed) {
			t.Errorf("the uploaded %s differs from %s (%v)", c.name, local, err)
		}
	}
}
