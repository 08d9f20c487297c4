package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// project makes a project root holding config/ files.
func project(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, "config", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func load(t testing.TB, buildConf string, env ...string) (*Config, error) {
	t.Helper()
	root := project(t, map[string]string{"build.conf": buildConf})
	return Load(Options{Root: root, Environ: env})
}

func TestBuildConfSyntax(t *testing.T) {
	tests := []struct {
		name  string
		conf  string
		env   []string
		check func(t *testing.T, c *Config)
	}{
		{"double and single quotes", "ALPINE_VERSION=\"3.21\"\nKERNEL_VERSION='6.1.55'\n", nil, func(t *testing.T, c *Config) {
			if c.AlpineVersion != "3.21" || c.KernelVersion != "6.1.55" {
				t.Errorf("got %q %q", c.AlpineVersion, c.KernelVersion)
			}
		}},
		{"unquoted, export, comments", "# comment\nexport ALPINE_ARCH=x86_64 # trailing\nexport JOBS\nJOBS=3\n", nil, func(t *testing.T, c *Config) {
			if c.AlpineArch != "x86_64" || c.Jobs != 3 {
				t.Errorf("got %q %d", c.AlpineArch, c.Jobs)
			}
		}},
		{"expansion of earlier keys", "ALPINE_VERSION=3.20\nALPINE_MIRROR=\"https://mirror.example/alpine\"\nKERNEL_SOURCE_URL=\"${ALPINE_MIRROR}/../kernel/v6.x/\"\n", nil, func(t *testing.T, c *Config) {
			if c.KernelSourceURL != "https://mirror.example/alpine/../kernel/v6.x/" {
				t.Errorf("got %q", c.KernelSourceURL)
			}
		}},
		{"PROJECT_ROOT names the project", "ALPINE_MIRROR=\"file://${PROJECT_ROOT}/mirror\"\n", nil, func(t *testing.T, c *Config) {
			if c.AlpineMirror != "file://"+c.Root+"/mirror" {
				t.Errorf("got %q", c.AlpineMirror)
			}
		}},
		{"default operator", "JOBS=\"${JOBS:-5}\"\n", nil, func(t *testing.T, c *Config) {
			if c.Jobs != 5 {
				t.Errorf("got %d", c.Jobs)
			}
		}},
		{"environment overrides the file", "JOBS=2\nENABLE_STRIP=true\n", []string{"JOBS=7", "ENABLE_STRIP=false"}, func(t *testing.T, c *Config) {
			if c.Jobs != 7 || c.EnableStrip {
				t.Errorf("got %d %v", c.Jobs, c.EnableStrip)
			}
			if o := c.Origin("JOBS"); !o.Env {
				t.Errorf("origin of JOBS = %v", o)
			}
		}},
		{"environment is seen by later expansions", "DIST_DIR=out\nINSTALL_DIR=\"${DIST_DIR}/root\"\n", []string{"DIST_DIR=/tmp/zos-dist"}, func(t *testing.T, c *Config) {
			if c.InstallDir != "/tmp/zos-dist/root" {
				t.Errorf("got %q", c.InstallDir)
			}
		}},
		{"environment sets a key absent from the file", "", []string{"KERNEL_SHA256=" + strings.Repeat("AB", 32)}, func(t *testing.T, c *Config) {
			if c.KernelSHA256 != strings.Repeat("ab", 32) {
				t.Errorf("got %q", c.KernelSHA256)
			}
		}},
		{"empty environment variable does not override", "JOBS=4\n", []string{"JOBS="}, func(t *testing.T, c *Config) {
			if c.Jobs != 4 {
				t.Errorf("got %d", c.Jobs)
			}
		}},
		{"defaults", "", nil, func(t *testing.T, c *Config) {
			if c.AlpineVersion != "3.22" || c.KernelVersion != "6.12.44" || !c.EnableStrip || c.Jobs != runtime.NumCPU() || c.SourceDateEpoch != nil {
				t.Errorf("defaults: %+v", c.Build)
			}
			if c.InstallDir != filepath.Join(c.Root, "initramfs") || c.CacheDir != filepath.Join(c.Root, "downloads") {
				t.Errorf("dirs: %q %q", c.InstallDir, c.CacheDir)
			}
		}},
		{"relative dirs resolve against the root", "INSTALL_DIR=\"build/root\"\nDIST_DIR=\"./out/../dist2\"\n", nil, func(t *testing.T, c *Config) {
			if c.InstallDir != filepath.Join(c.Root, "build/root") || c.DistDir != filepath.Join(c.Root, "dist2") {
				t.Errorf("got %q %q", c.InstallDir, c.DistDir)
			}
		}},
		{"typed values", "SOURCE_DATE_EPOCH=1700000000\nINITRAMFS_MAX_SIZE=64M\nENABLE_UPX=no\n", nil, func(t *testing.T, c *Config) {
			if c.SourceDateEpoch == nil || *c.SourceDateEpoch != 1700000000 || c.InitramfsMaxSize != 64<<20 || c.EnableUPX {
				t.Errorf("got %v %d %v", c.SourceDateEpoch, c.InitramfsMaxSize, c.EnableUPX)
			}
			if v, _ := c.Value("INITRAMFS_MAX_SIZE"); v != "67108864" {
				t.Errorf("Value = %q", v)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.conf, tt.env...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// Relative directories must not depend on where mage was started.
func TestRelativeDirsIgnoreCwd(t *testing.T) {
	root := project(t, map[string]string{"build.conf": "INSTALL_DIR=rootfs\n"})
	elsewhere := t.TempDir()
	t.Chdir(elsewhere)
	c, err := Load(Options{Root: root, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if c.InstallDir != filepath.Join(root, "rootfs") {
		t.Errorf("INSTALL_DIR = %s", c.InstallDir)
	}
}

func TestBuildConfErrors(t *testing.T) {
	tests := []struct {
		name string
		conf string
		env  []string
		want []string
	}{
		{"bad bool names file line key", "# x\n\nENABLE_STRIP=\"yes please\"\n", nil,
			[]string{`config/build.conf:3: ENABLE_STRIP: want true or false, got "yes please"`}},
		{"bad number", "JOBS=many\n", nil, []string{`config/build.conf:1: JOBS: want a whole number, got "many"`}},
		{"negative number", "JOBS=-1\n", nil, []string{"config/build.conf:1: JOBS: want a number >= 0"}},
		{"bad enum", "INITRAMFS_COMPRESSION=zstd\n", nil, []string{`config/build.conf:1: INITRAMFS_COMPRESSION: want one of auto, xz, go, got "zstd"`}},
		{"bad url", "ALPINE_MIRROR=mirror.example\n", nil, []string{"config/build.conf:1: ALPINE_MIRROR: want an http, https or file URL"}},
		{"bad version", "KERNEL_VERSION=latest\n", nil, []string{"config/build.conf:1: KERNEL_VERSION: want a version"}},
		{"bad sha", "KERNEL_SHA256=abc\n", nil, []string{"config/build.conf:1: KERNEL_SHA256: want 64 hex digits"}},
		{"all errors at once", "JOBS=x\nENABLE_UPX=maybe\n", nil, []string{"build.conf:1: JOBS", "build.conf:2: ENABLE_UPX"}},
		{"environment value", "", []string{"ENABLE_STRIP=perhaps"}, []string{`environment: ENABLE_STRIP: want true or false, got "perhaps"`}},
		{"command substitution", "JOBS=$(nproc)\n", nil, []string{"config/build.conf:1: JOBS: command substitution is not supported"}},
		{"a command", "ALPINE_VERSION=3.22\nrm -rf /\n", nil, []string{`config/build.conf:2: only variable assignments are allowed, found the command "rm"`}},
		{"a conditional", "if true; then JOBS=1; fi\n", nil, []string{"config/build.conf:1: only variable assignments are allowed, found a conditional"}},
		{"an array", "JOBS=(1 2)\n", nil, []string{"config/build.conf:1: JOBS: arrays are not supported"}},
		{"unset variable", "INSTALL_DIR=\"${NOPE_NOT_SET}/x\"\n", nil, []string{"config/build.conf:1: INSTALL_DIR: ${NOPE_NOT_SET} is not set"}},
		{"syntax error", "JOBS=\"2\n", nil, []string{"config/build.conf:1:"}},
		{"work dir is the project", "INSTALL_DIR=.\n", nil, []string{"config/build.conf:1: INSTALL_DIR:", "would contain the project itself"}},
		{"work dir is root", "DIST_DIR=/\n", nil, []string{"config/build.conf:1: DIST_DIR:", "would contain the project itself"}},
		{"work dir inside sources", "KERNEL_DIR=config/kernel\n", nil, []string{"config/build.conf:1: KERNEL_DIR:", "inside the source folder config/"}},
		{"missing tarball", "KERNEL_SOURCE_TARBALL=/nonexistent/linux.tar.xz\n", nil, []string{"config/build.conf:1: KERNEL_SOURCE_TARBALL: /nonexistent/linux.tar.xz: no such file or directory"}},
		{"relative dir route", "LOCAL_STORE_ROUTE=dir://dist/store\n", nil, []string{"config/build.conf:1: LOCAL_STORE_ROUTE: want dir:///absolute/path"}},
		{"route without port", "LOCAL_STORE_ROUTE=s3://h/b\n", nil, []string{"LOCAL_STORE_ROUTE: an s3 route needs a port"}},
		{"not a route", "LOCAL_STORE_ROUTE=ftp://h/\n", nil, []string{"LOCAL_STORE_ROUTE: want a store URL"}},
		{"half a pin", "ALPINE_MINIROOTFS_VERSION=3.22.1\n", nil, []string{"config/build.conf:1: ALPINE_MINIROOTFS_VERSION and ALPINE_MINIROOTFS_SHA256 pin a release together"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.conf, tt.env...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestUnknownKeyWarnsWithNearest(t *testing.T) {
	c, err := load(t, "ALPINE_VERISON=3.22\nTOTALLY_DIFFERENT=1\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"config/build.conf:1: unknown key ALPINE_VERISON (did you mean ALPINE_VERSION?)",
		"config/build.conf:2: unknown key TOTALLY_DIFFERENT",
	}
	if strings.Join(c.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(c.Warnings, "\n"), strings.Join(want, "\n"))
	}
}

func TestProfileOverlay(t *testing.T) {
	root := project(t, map[string]string{
		"build.conf":                     "ALPINE_VERSION=3.22\nJOBS=2\n",
		"modules.conf":                   "stage1:virtio_net\n",
		"profiles/offline/build.conf":    "JOBS=1\nINSTALL_DIR=offline/root\n",
		"profiles/offline/modules.conf":  "stage1:e1000\n",
		"profiles/offline/packages.list": "",
		"packages.list":                  "busybox\n",
		"profiles/empty/.keep":           "",
		"profiles/offline/zinit/x.yaml":  "exec: /bin/true\n",
	})
	c, err := Load(Options{Root: root, Profile: "offline", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if c.AlpineVersion != "3.22" || c.Jobs != 1 || c.InstallDir != filepath.Join(root, "offline/root") {
		t.Errorf("overlay: %+v", c.Build)
	}
	if len(c.Modules) != 1 || c.Modules[0].Name != "e1000" || c.Modules[0].File != "config/profiles/offline/modules.conf" {
		t.Errorf("modules from profile: %+v", c.Modules)
	}
	if len(c.Packages) != 0 {
		t.Errorf("profile's empty packages.list should replace the main one: %+v", c.Packages)
	}
	if o := c.Origin("JOBS"); o.File != "config/profiles/offline/build.conf" || o.Line != 1 {
		t.Errorf("origin = %v", o)
	}
	if d := c.ProfileDir("zinit"); d != filepath.Join(root, "config/profiles/offline/zinit") {
		t.Errorf("ProfileDir(zinit) = %q", d)
	}
	if d := c.ProfileDir("firmware"); d != "" {
		t.Errorf("ProfileDir of a folder the profile lacks = %q", d)
	}
	if _, err := Load(Options{Root: root, Profile: "missing", Environ: []string{}}); err == nil || !strings.Contains(err.Error(), "config/profiles/missing is not a directory") {
		t.Errorf("missing profile: %v", err)
	}
}

func TestListFiles(t *testing.T) {
	root := project(t, map[string]string{
		"build.conf":    "",
		"packages.list": "# base\nbusybox\nbusybox-extras>=1.36 # pinned\n\neudev\n",
		"modules.conf":  "stage1:virtio_net\nstage1:xhci-pci:ignored-hint\n  stage2:r8169:rtl_nic # NIC\n",
		"firmware.conf": "# nics\nrtl_nic\nbnx2x: Broadcom 10G\n",
	})
	c, err := Load(Options{Root: root, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Packages) != 3 || c.Packages[1].Spec != "busybox-extras>=1.36" || c.Packages[1].Where() != "config/packages.list:3" {
		t.Errorf("packages: %+v", c.Packages)
	}
	if got := strings.Join(c.ModuleNames(1), ","); got != "virtio_net,xhci-pci" {
		t.Errorf("stage1: %s", got)
	}
	if got := strings.Join(c.ModuleNames(2), ","); got != "r8169" || c.Modules[2].Line != 3 {
		t.Errorf("stage2: %s %+v", got, c.Modules)
	}
	if got := strings.Join(c.FirmwareNames(), ","); got != "rtl_nic,bnx2x" {
		t.Errorf("firmware: %s", got)
	}
}

func TestListFileErrors(t *testing.T) {
	tests := []struct {
		file, content, want string
	}{
		{"packages.list", "busybox\nfoo bar\n", "config/packages.list:2: one package per line, got 2"},
		{"packages.list", "bad/name\n", `config/packages.list:1: want an apk package such as busybox or busybox>=1.36, got "bad/name"`},
		{"modules.conf", "virtio_net\n", `config/modules.conf:1: want stage1:<module> or stage2:<module>, got "virtio_net"`},
		{"modules.conf", "stage3:e1000\n", `config/modules.conf:1: want stage1 or stage2 before ':', got "stage3"`},
		{"modules.conf", "stage1:e1000\nstage2:e1000\n", "config/modules.conf:2: module e1000 is already listed at config/modules.conf:1"},
		{"modules.conf", "stage1:e1000 e100\n", "config/modules.conf:1: want a module name"},
		{"firmware.conf", "rtl nic\n", "config/firmware.conf:1: want one linux-firmware subpackage name"},
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.want, func(t *testing.T) {
			root := project(t, map[string]string{"build.conf": "", tt.file: tt.content})
			_, err := Load(Options{Root: root, Environ: []string{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant %q", err, tt.want)
			}
		})
	}
}

func TestRFSConf(t *testing.T) {
	secret := "s3cr3t-DO-NOT-PRINT"
	good := "S3_ENDPOINT=http://127.0.0.1:9000\nS3_BUCKET=zos\nS3_ACCESS_KEY=ak\nS3_SECRET_KEY=" + secret + "\nROUTE_PATH=zos/blobs\n"
	root := project(t, map[string]string{"build.conf": "", "rfs.conf": good})
	c, err := Load(Options{Root: root, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	r := c.RFS
	if r == nil || r.SecretKey != secret || r.Region != "garage" || r.ManifestsSubpath != "manifests" || r.UploadManifests {
		t.Fatalf("rfs: %+v", r)
	}
	// The defaults and the route endpoint taken from S3_ENDPOINT, as the
	// route written into flists.
	if route, err := r.RouteURL(); err != nil || route != "s3://127.0.0.1:9000/zos/blobs?region=garage" {
		t.Errorf("route %q, %v", route, err)
	}

	noRFS := project(t, map[string]string{"build.conf": ""})
	if c, err := Load(Options{Root: noRFS, Environ: []string{}}); err != nil || c.RFS != nil {
		t.Errorf("without rfs.conf: %v %v", c.RFS, err)
	}

	bad := project(t, map[string]string{"build.conf": "", "rfs.conf": "S3_ENDPOINT=nope\nS3_SECRET_KEY=" + secret + "\nUPLOAD_MANIFESTS=sometimes\n"})
	_, err = Load(Options{Root: bad, Environ: []string{}})
	if err == nil {
		t.Fatal("bad rfs.conf accepted")
	}
	for _, w := range []string{"config/rfs.conf:1: S3_ENDPOINT: want an http or https URL", "S3_BUCKET: required", `config/rfs.conf:3: UPLOAD_MANIFESTS: want true or false, got "sometimes"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the secret: %v", err)
	}
}

// The shipped config must load cleanly and without warnings.
func TestShippedConfig(t *testing.T) {
	c, err := Load(Options{Root: "../..", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) > 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	// A first build must not fail by design: no release is pinned to a
	// checksum nothing can match. corex publishes only an MD5.
	for _, comp := range c.Components {
		if comp.Type == "release" && strings.Trim(strings.TrimPrefix(comp.Checksum, "md5:"), "0") == "" {
			t.Errorf("%s: %s is pinned to an all-zero checksum", comp.Where(), comp.Name)
		}
		if comp.Name == "corex" && comp.Checksum != "md5:6427daa42cf93ba65d0377e29ea57148" {
			t.Errorf("%s: corex pinned to %q, want the MD5 upstream publishes", comp.Where(), comp.Checksum)
		}
	}
}

func FuzzBuildConf(f *testing.F) {
	for _, seed := range []string{
		"ALPINE_VERSION=\"3.22\"\n", "export JOBS=4\n", "INSTALL_DIR=${DIST_DIR:-x}/y\n", "ENABLE_STRIP='yes'\n",
		"KERNEL_VERSION=6.1 # c\n", "a=$(b)\n", "if x; then y; fi\n", "X=(1 2)\n", "INITRAMFS_MAX_SIZE=12G\n",
	} {
		f.Add(seed)
	}
	root := project(f, map[string]string{"build.conf": ""})
	f.Fuzz(func(t *testing.T, conf string) {
		if err := os.WriteFile(filepath.Join(root, "config", "build.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(Options{Root: root, Environ: []string{}})
		if err != nil {
			if !strings.Contains(err.Error(), "config/build.conf") && !strings.Contains(err.Error(), "default:") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		// Whatever was accepted satisfies the invariants the stages rely on.
		if c.Jobs < 1 || c.RFSJobs < 1 || c.InitramfsMaxSize < 0 {
			t.Errorf("invalid numbers accepted: %+v", c.Build)
		}
		for _, d := range []string{c.InstallDir, c.ComponentsDir, c.KernelDir, c.DistDir, c.CacheDir, c.StateDir} {
			if !filepath.IsAbs(d) || d == "/" || d == c.Root {
				t.Errorf("unsafe work dir accepted: %q", d)
			}
		}
	})
}

func TestSourcesConf(t *testing.T) {
	root := project(t, map[string]string{
		"build.conf":   "",
		"sources.conf": "# c\ngit zinit https://example.com/zinit.git v0.2.28 cargo-musl:zinit /sbin/zinit\nlocal tool tools/x - go:./cmd/x /usr/bin/x\n",
	})
	c, err := Load(Options{Root: root, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Components) != 2 || c.Components[0].Name != "zinit" || c.Components[1].Where() != "config/sources.conf:3" {
		t.Errorf("components: %+v", c.Components)
	}
	bad := project(t, map[string]string{"build.conf": "", "sources.conf": "git zinit\n"})
	if _, err := Load(Options{Root: bad, Environ: []string{}}); err == nil || !strings.Contains(err.Error(), "config/sources.conf:1") {
		t.Errorf("bad sources.conf: %v", err)
	}
}

func TestCacheConf(t *testing.T) {
	secret := "s3cr3t-DO-NOT-PRINT"
	good := "CACHE_URL=s3://127.0.0.1:9000/zos-cache/team\nCACHE_ACCESS_KEY=ak\nCACHE_SECRET_KEY=" + secret +
		"\nCOMPILE_CACHE_REMOTE=redis://:" + secret + "@127.0.0.1:6379\n"
	root := project(t, map[string]string{"build.conf": "", "cache.conf": good})
	c, err := Load(Options{Root: root, Environ: []string{"CACHE_MAX_AGE=12h"}})
	if err != nil {
		t.Fatal(err)
	}
	cc := c.Cache
	if cc == nil || cc.URL != "s3://127.0.0.1:9000/zos-cache/team" || !cc.Push || cc.MaxAge != 12*time.Hour ||
		cc.CompileCache != "ccache" || cc.CompileCacheSize != 5<<30 || cc.CompileCacheDir != filepath.Join(c.CacheDir, "ccache") {
		t.Fatalf("cache: %+v", cc)
	}
	if s := cc.Secrets(); len(s) != 2 || s[0] != secret || s[1] != secret {
		t.Errorf("Secrets() = %v", s)
	}
	if c, err := load(t, ""); err != nil || c.Cache != nil {
		t.Errorf("without cache.conf: %v %v", c.Cache, err)
	}
	defaults := project(t, map[string]string{"build.conf": "", "cache.conf": "CACHE_URL=dir:///srv/cache\n"})
	if c, err := Load(Options{Root: defaults, Environ: []string{}}); err != nil || c.Cache.MaxAge != 30*24*time.Hour || c.Cache.MaxSize != 0 {
		t.Errorf("defaults: %+v %v", c.Cache, err)
	}

	for _, tt := range []struct{ conf, want string }{
		{"CACHE_URL=s3://ak:" + secret + "@h:9000/b\n", "config/cache.conf:1: CACHE_URL: the URL holds credentials"},
		{"CACHE_URL=http://h:9000/b\n", "CACHE_URL: want dir:///abs/path or s3://"},
		{"CACHE_URL=s3://h/b\n", "CACHE_URL: want s3://HOST:PORT/BUCKET"},
		{"CACHE_URL=dir://relative/x\n", "CACHE_URL: want dir:///abs/path (an absolute path)"},
		{"CACHE_URL=dir:///x\nCACHE_MAX_AGE=soon\n", `config/cache.conf:2: CACHE_MAX_AGE: want a duration such as 30d, 12h or 90m, got "soon"`},
		{"CACHE_URL=dir:///x\nCOMPILE_CACHE_REMOTE=memcached://:" + secret + "@h\n", "COMPILE_CACHE_REMOTE: want redis://, http:// or file://"},
		{"CACHE_URL=dir:///x\nCOMPILE_CACHE=sccache\n", "COMPILE_CACHE: want one of ccache, off"},
		{"CACHE_URL=s3://h:1/b\nCACHE_SECRET_KEY=" + secret + "\n", "CACHE_ACCESS_KEY and CACHE_SECRET_KEY must be set together"},
		{"CACHE_REGION=x\n", "CACHE_URL: required"},
	} {
		root := project(t, map[string]string{"build.conf": "", "cache.conf": tt.conf})
		_, err := Load(Options{Root: root, Environ: []string{}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error = %v, want %q", tt.conf, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
}

// The committed template loads as it is, without warnings.
func TestCacheConfExample(t *testing.T) {
	example, err := os.ReadFile("../../config/cache.conf.example")
	if err != nil {
		t.Fatal(err)
	}
	root := project(t, map[string]string{"build.conf": "", "cache.conf": string(example)})
	c, err := Load(Options{Root: root, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) > 0 || c.Cache == nil || c.Cache.MaxSize != 50<<30 || c.Cache.CompileCacheRemote == "" {
		t.Errorf("warnings %v, cache %+v", c.Warnings, c.Cache)
	}
}
