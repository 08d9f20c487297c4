package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// Build holds the typed, validated values of config/build.conf. The struct
// tags are the single description of every key: its name, default, check and
// documentation (Reference lists them; a test keeps the README's config
// reference in step with them).
type Build struct {
	AlpineVersion           string `key:"ALPINE_VERSION" default:"3.22" check:"version" doc:"Alpine release branch; the mirror path is v<ALPINE_VERSION>"`
	AlpineMirror            string `key:"ALPINE_MIRROR" default:"https://dl-cdn.alpinelinux.org/alpine" check:"url" doc:"Alpine mirror base URL (http, https or file)"`
	AlpineImageMirror       string `key:"ALPINE_IMAGE_MIRROR" check:"url" doc:"the mirror the image's /etc/apk/repositories names, for apk on a node; empty: ALPINE_MIRROR (the offline profile sets Alpine's, so the image does not carry the work tree's file:// mirror)"`
	AlpineArch              string `key:"ALPINE_ARCH" default:"x86_64" check:"enum:x86_64" doc:"target architecture; the kernel config and components are x86_64"`
	AlpineMinirootfsVersion string `key:"ALPINE_MINIROOTFS_VERSION" check:"version" doc:"pin an exact minirootfs release (e.g. 3.22.1); empty reads latest-releases.yaml"`
	AlpineMinirootfsSHA256  string `key:"ALPINE_MINIROOTFS_SHA256" check:"sha256" doc:"sha256 of the pinned minirootfs tarball; required with ALPINE_MINIROOTFS_VERSION"`
	AlpineExtraKeys         string `key:"ALPINE_EXTRA_KEYS" check:"path" doc:"folder of apk signing keys (*.rsa.pub) trusted besides Alpine's own, which are built in: a private or test mirror's key; empty trusts Alpine's keys only"`

	KernelVersion       string `key:"KERNEL_VERSION" default:"6.12.44" check:"version" doc:"upstream kernel version; FULL_VERSION adds CONFIG_LOCALVERSION from config/kernel.config"`
	KernelSourceURL     string `key:"KERNEL_SOURCE_URL" default:"https://cdn.kernel.org/pub/linux/kernel/v6.x/" check:"url" doc:"directory holding linux-<KERNEL_VERSION>.tar.xz and sha256sums.asc, or its parent (the original's https://cdn.kernel.org/pub/linux/kernel): v<major>.x/ is then tried too"`
	KernelSHA256        string `key:"KERNEL_SHA256" check:"sha256" doc:"pin the kernel tarball's sha256; empty trusts the mirror's sha256sums.asc"`
	KernelSourceTarball string `key:"KERNEL_SOURCE_TARBALL" check:"file" doc:"use this local kernel tarball instead of downloading (any top folder name)"`
	KernelModulesDir    string `key:"KERNEL_MODULES_DIR" check:"dir" doc:"use a prebuilt modules tree (a directory holding lib/modules/<ver>) instead of building modules"`

	InstallDir    string `key:"INSTALL_DIR" default:"initramfs" check:"workdir" doc:"the initramfs root being assembled"`
	ComponentsDir string `key:"COMPONENTS_DIR" default:"components" check:"workdir" doc:"component checkouts and build logs"`
	KernelDir     string `key:"KERNEL_DIR" default:"kernel" check:"workdir" doc:"kernel source (linux/), its objtree (linux/out) and modules-root"`
	DistDir       string `key:"DIST_DIR" default:"dist" check:"workdir" doc:"outputs: vmlinuz.efi, initramfs.cpio.xz, flists/"`
	CacheDir      string `key:"CACHE_DIR" default:"downloads" check:"workdir" doc:"download cache, kept by mage clean (mage clean:all removes it)"`
	StateDir      string `key:"STATE_DIR" default:".build" check:"workdir" doc:"stage markers, lock file and logs"`
	FirmwareDir   string `key:"FIRMWARE_DIR" default:"firmware" check:"path" doc:"user-provided firmware files: <FIRMWARE_DIR>/<entry>/ is taken before the Alpine package"`

	EnableStrip    bool     `key:"ENABLE_STRIP" default:"true" doc:"strip ELF binaries in the image (kernel modules only lose debug info)"`
	EnableUPX      bool     `key:"ENABLE_UPX" default:"true" doc:"UPX-compress the large binaries when upx is installed (a warning otherwise)"`
	UPXBinaries    []string `key:"UPX_BINARIES" check:"inroot" doc:"space-separated in-image paths UPX compresses; empty means every component's INSTALL_PATH"`
	ZeroOSBranding bool     `key:"ZEROOS_BRANDING" default:"true" doc:"write /etc/issue and /etc/motd and make root passwordless"`

	FirmwareTag         string `key:"FIRMWARE_TAG" check:"tag" doc:"name of the firmware flist (firmware-<tag>.fl); empty uses the date"`
	FirmwareFlistSource string `key:"FIRMWARE_FLIST_SOURCE" default:"alpine" check:"enum:alpine|local" doc:"what the firmware flist packs: alpine = every linux-firmware* package of the mirror, FIRMWARE_DIR's files on top; local = FIRMWARE_DIR alone, or the image's /lib/firmware when FIRMWARE_DIR is empty (before 2025-09)"`
	EnableRFS           bool   `key:"ENABLE_RFS" default:"true" doc:"run the rfs_flists stage: pack modules and firmware flists and embed them in /etc/rfs"`
	RFSJobs             int    `key:"RFS_JOBS" default:"16" check:"min:1" doc:"parallel blob uploads when packing flists (to a dir store: at most one per CPU)"`
	// LocalStoreRoute keeps flists packed without rfs.conf independent of
	// the work tree's path (the store's own route would be dir://<its
	// absolute path>), so the same inputs give the same flists anywhere.
	LocalStoreRoute string `key:"LOCAL_STORE_ROUTE" default:"http://10.0.2.100/" check:"route" doc:"without rfs.conf: the route written into the flists, where nodes read the blobs of DIST_DIR/flists/store (the default is where runit.sh --store serves that store to a VM); empty writes the store's own dir://<absolute path>"`

	Jobs            int    `key:"JOBS" check:"min:0" doc:"parallel jobs for make and component builds; empty or 0 uses the number of CPUs"`
	SourceDateEpoch *int64 `key:"SOURCE_DATE_EPOCH" check:"min:0" doc:"fixed timestamp (seconds) for reproducible archives"`

	InitramfsCompression string `key:"INITRAMFS_COMPRESSION" default:"auto" check:"enum:auto|xz|go" doc:"xz backend: the xz binary (multi-threaded), the Go encoder, or auto (xz when installed)"`
	InitramfsMaxSize     int64  `key:"INITRAMFS_MAX_SIZE" default:"0" check:"size" doc:"fail initramfs_test when the archive is larger (e.g. 64M); 0 turns the check off"`

	ContainerRuntime string `key:"CONTAINER_RUNTIME" default:"none" check:"enum:none|podman|docker" doc:"run the build inside the builder image with podman or docker, or on the host (none)"`
}

// keySpec is one config field's description, read from its struct tags:
// key (the shell variable), default, check, doc, and the flags required and
// secret (a secret's value never appears in a message).
type keySpec struct {
	Name     string
	Default  string
	Check    string
	Doc      string
	Required bool
	Secret   bool
	index    []int // of the field, through embedded structs
}

// keysOf describes the tagged fields of the struct type of v, those of
// embedded structs included (RFS embeds store.S3Config).
func keysOf(v any) []keySpec {
	var specs []keySpec
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			index := append(slices.Clone(prefix), i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, index)
				continue
			}
			if f.Tag.Get("key") == "" {
				continue
			}
			specs = append(specs, keySpec{
				Name: f.Tag.Get("key"), Default: f.Tag.Get("default"),
				Check: f.Tag.Get("check"), Doc: f.Tag.Get("doc"),
				Required: f.Tag.Get("required") == "true", Secret: f.Tag.Get("secret") == "true",
				index: index,
			})
		}
	}
	walk(reflect.TypeOf(v), nil)
	return specs
}

var (
	versionRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)+(-rc[0-9]+)?$`)
	sha256Re  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	tagRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// set parses raw into the key's field of the struct that dst points to.
// Error messages follow the form "want X, got Y"; the caller prefixes file,
// line and key.
func (k keySpec) set(dst any, raw, root string) error {
	if k.Required && raw == "" {
		return fmt.Errorf("required, got an empty value")
	}
	v := reflect.ValueOf(dst).Elem().FieldByIndex(k.index)
	switch v.Kind() {
	case reflect.Bool:
		x, err := ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(x)
		return nil
	case reflect.Int, reflect.Int64:
		n, err := k.parseNumber(raw)
		if err != nil {
			return err
		}
		v.SetInt(n)
		return nil
	case reflect.Slice: // a space-separated list
		var items []string
		for _, f := range strings.Fields(raw) {
			if k.Check == "inroot" && !strings.HasPrefix(f, "/") {
				return fmt.Errorf("want absolute paths inside the image such as /sbin/zinit, got %q", f)
			}
			items = append(items, f)
		}
		v.Set(reflect.ValueOf(items))
		return nil
	case reflect.Pointer: // optional number: empty leaves it nil
		if raw == "" {
			v.SetZero()
			return nil
		}
		n, err := k.parseNumber(raw)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(&n))
		return nil
	}
	s, err := k.checkString(raw, root)
	if err != nil {
		return err
	}
	v.SetString(s)
	return nil
}

// ParseBool is how every boolean of the build is read, in the config files
// and in the environment (FORCE, DEEP, JSON): true/false, 1/0, yes/no,
// on/off, in any case. Anything else is an error that quotes it.
func ParseBool(raw string) (bool, error) {
	switch strings.ToLower(raw) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("want true or false, got %q", raw)
}

func (k keySpec) parseNumber(raw string) (int64, error) {
	switch k.Check {
	case "size":
		return parseSize(raw)
	case "duration":
		return parseDuration(raw)
	}
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want a whole number, got %q", raw)
	}
	if lim, ok := strings.CutPrefix(k.Check, "min:"); ok {
		if m, _ := strconv.ParseInt(lim, 10, 64); n < m {
			return 0, fmt.Errorf("want a number >= %d, got %d", m, n)
		}
	}
	return n, nil
}

// parseSize reads "0", "123", "64K", "64M", "1G" (powers of 1024).
func parseSize(raw string) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(raw))
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	for suffix, m := range map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30} {
		if t, ok := strings.CutSuffix(strings.TrimSuffix(s, "B"), suffix); ok {
			s, mult = t, m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a size such as 0, 500K, 64M or 1G, got %q", raw)
	}
	return n * mult, nil
}

func (k keySpec) checkString(raw, root string) (string, error) {
	check, arg, _ := strings.Cut(k.Check, ":")
	if raw == "" {
		if check == "workdir" {
			return "", fmt.Errorf("want a directory, got an empty value")
		}
		return "", nil
	}
	switch check {
	case "version":
		if !versionRe.MatchString(raw) {
			return "", fmt.Errorf("want a version such as 3.22 or 6.12.44, got %q", raw)
		}
	case "sha256":
		raw = strings.ToLower(raw)
		if !sha256Re.MatchString(raw) {
			return "", fmt.Errorf("want 64 hex digits (a sha256), got %q", raw)
		}
	case "tag":
		if !tagRe.MatchString(raw) {
			return "", fmt.Errorf("want letters, digits, '.', '_' or '-' (it names a file), got %q", raw)
		}
	case "enum":
		choices := strings.Split(arg, "|")
		for _, c := range choices {
			if raw == c {
				return raw, nil
			}
		}
		return "", fmt.Errorf("want one of %s, got %q", strings.Join(choices, ", "), raw)
	case "url", "httpurl":
		u, err := url.Parse(raw)
		web := err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
		if check == "httpurl" && !web {
			return "", fmt.Errorf("want an http or https URL such as https://s3.example.com:3900, got %q", raw)
		}
		if !web && (err != nil || u.Scheme != "file") {
			return "", fmt.Errorf("want an http, https or file URL, got %q", raw)
		}
	case "storeurl":
		return raw, checkStoreURL(raw)
	case "remoteurl":
		return raw, checkRemoteURL(raw)
	case "route":
		return raw, checkRoute(raw)
	case "workdir":
		return checkWorkDir(raw, root)
	case "path":
		return absPath(raw, root), nil
	case "file", "dir":
		p := absPath(raw, root)
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, unwrapPathError(err))
		}
		if (check == "dir") != st.IsDir() {
			return "", fmt.Errorf("want a %s, %s is not one", map[bool]string{true: "directory", false: "file"}[check == "dir"], p)
		}
		return p, nil
	}
	return raw, nil
}

// checkRoute accepts the store URLs an flist route may hold: dir:// with
// an absolute path, http(s):// with a host, s3:// or s3s:// with host:port.
func checkRoute(raw string) error {
	u, err := url.Parse(raw)
	if err == nil {
		switch u.Scheme {
		case "dir":
			if u.Host == "" && strings.HasPrefix(u.Path, "/") {
				return nil
			}
			return fmt.Errorf("want dir:///absolute/path (three slashes), got %q", raw)
		case "http", "https":
			if u.Host != "" {
				return nil
			}
		case "s3", "s3s":
			if u.Port() != "" {
				return nil
			}
			return fmt.Errorf("an s3 route needs a port, got %q", raw)
		}
	}
	return fmt.Errorf("want a store URL (dir:///path, http://host/, https://host/path, s3://host:port/bucket), got %q", raw)
}

// checkWorkDir resolves a work directory against the project root (never the
// caller's cwd) and refuses directories that `mage clean` must never delete:
// the root itself, any of its ancestors, and the source folders in it.
func checkWorkDir(raw, root string) (string, error) {
	p := absPath(raw, root)
	if p == "/" || p == root || strings.HasPrefix(root+"/", p+"/") {
		return "", fmt.Errorf("%s would contain the project itself; choose a directory of its own", p)
	}
	for _, src := range []string{"config", "zinit", "firmware", "scripts", "magefiles", "pkg", ".git"} {
		s := filepath.Join(root, src)
		if p == s || strings.HasPrefix(p, s+"/") {
			return "", fmt.Errorf("%s is inside the source folder %s/; choose a directory of its own", p, src)
		}
	}
	return p, nil
}

func absPath(p, root string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[2:])
		}
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(root, p)
	}
	return filepath.Clean(p)
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// finish fills derived defaults after all keys are set.
func (b *Build) finish() {
	if b.Jobs == 0 {
		b.Jobs = runtime.NumCPU()
	}
}

// fieldText is a key's typed value as text (paths absolute, sizes in bytes),
// which is what stages fingerprint.
func fieldText(dst any, k keySpec) string {
	v := reflect.ValueOf(dst).Elem().FieldByIndex(k.index)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Kind() == reflect.Slice {
		return strings.Join(v.Interface().([]string), " ")
	}
	return fmt.Sprint(v.Interface())
}
