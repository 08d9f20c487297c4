package alpine

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/download"
	"github.com/threefoldtech/zosbuilder/pkg/progress"
)

// The test mirror: an Alpine mirror layout served by httptest, holding a
// minirootfs made from Debian's busybox-static and a main repository with
// an apk-tools-static package whose apk.static is a recording script, all
// signed with a key generated here.

const (
	testVersion = "3.22"
	testRelease = "3.22.1"
	testKeyName = "test@zosbuilder-5f0a0b0c.rsa.pub"
	apkVersion  = "2.14.9-r2"
)

// recorder is the "small recording executable" the contract tests run in
// place of apk: it writes its arguments, uid and uid_map next to
// $APK_RECORD and fails like apk for a package named nosuchpkg.
const recorder = `#!/bin/sh
printf '%s\n' "$@" > "$APK_RECORD.args"
id -u > "$APK_RECORD.uid"
cat /proc/self/uid_map > "$APK_RECORD.uidmap"
for a in "$@"; do
	case "$a" in
	nosuchpkg*)
		echo "ERROR: unable to select packages:" >&2
		echo "  nosuchpkg (no such package):" >&2
		echo "    required by: world[$a]" >&2
		exit 1;;
	esac
done
echo "OK: 42 MiB in 17 packages"
`

type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

// tarGz writes entries as a gzip member; trailer=false leaves out the
// end-of-archive blocks as abuild does for signature and control members.
func tarGz(t testing.TB, entries []tarEntry, trailer bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: mode, Size: int64(len(e.body)),
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatGNU}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if typ == tar.TypeChar {
			hdr.Devmajor, hdr.Devminor = 1, 3
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	var err error
	if trailer {
		err = tw.Close()
	} else {
		err = tw.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type signer struct {
	key  *rsa.PrivateKey
	name string
}

func newSigner(t testing.TB, name string) signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signer{k, name}
}

func (s signer) publicPEM(t testing.TB) string {
	der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// sign returns the signature member abuild-sign prepends: RSA PKCS#1 v1.5
// over the SHA1 of the signed bytes.
func (s signer) sign(t testing.TB, signed []byte) []byte {
	t.Helper()
	h := sha1.Sum(signed)
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA1, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return tarGz(t, []tarEntry{{name: ".SIGN.RSA." + s.name, body: string(sig)}}, false)
}

// makeApk builds a signed .apk holding files and returns it with the
// APKINDEX checksum (C:) of its control member.
func makeApk(t testing.TB, s signer, name, version string, files []tarEntry) ([]byte, string) {
	t.Helper()
	data := tarGz(t, files, true)
	dh := sha256.Sum256(data)
	pkginfo := fmt.Sprintf("pkgname = %s\npkgver = %s\narch = x86_64\ndatahash = %s\n", name, version, hex.EncodeToString(dh[:]))
	control := tarGz(t, []tarEntry{{name: ".PKGINFO", body: pkginfo}}, false)
	ch := sha1.Sum(control)
	apk := append(append(s.sign(t, control), control...), data...)
	return apk, "Q1" + base64.StdEncoding.EncodeToString(ch[:])
}

func makeIndex(t testing.TB, s signer, text string) []byte {
	t.Helper()
	idx := tarGz(t, []tarEntry{{name: "DESCRIPTION", body: "v3.22-test"}, {name: "APKINDEX", body: text}}, true)
	return append(s.sign(t, idx), idx...)
}

// makeMinirootfs builds an Alpine-like minirootfs from /bin/busybox: the
// binary, its applets as absolute symlinks (as Alpine ships them), /etc
// files including what Configure removes, the trusted key, and a device
// node that extraction must skip.
func makeMinirootfs(t testing.TB, keyPEM string) []byte {
	t.Helper()
	testutil.RequireFile(t, "/bin/busybox")
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command("/bin/busybox", "--list-full").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := func(n string, mode int64) tarEntry { return tarEntry{name: n + "/", typ: tar.TypeDir, mode: mode} }
	entries := []tarEntry{
		dir("bin", 0o755), dir("sbin", 0o755), dir("usr", 0o755), dir("usr/bin", 0o755), dir("usr/sbin", 0o755),
		dir("etc", 0o755), dir("etc/apk", 0o755), dir("etc/apk/keys", 0o755), dir("etc/init.d", 0o755),
		dir("etc/conf.d", 0o755), dir("etc/runlevels", 0o755), dir("etc/runlevels/default", 0o755),
		dir("lib", 0o755), dir("lib/apk", 0o755), dir("lib/apk/db", 0o755), dir("dev", 0o755),
		dir("proc", 0o555), dir("sys", 0o555), dir("tmp", 0o1777), dir("root", 0o700), dir("var", 0o755),
		{name: "bin/busybox", body: string(bb), mode: 0o755},
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		{name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\n"},
		{name: "etc/group", body: "root:x:0:root\n"},
		{name: "etc/shadow", body: "root:*::0:::::\n", mode: 0o640},
		{name: "etc/hostname", body: "localhost\n"},
		{name: "etc/inittab", body: "::sysinit:/sbin/openrc sysinit\n"},
		{name: "etc/init.d/hwclock", body: "#!/sbin/openrc-run\n", mode: 0o755},
		{name: "etc/alpine-release", body: testRelease + "\n"},
		{name: "etc/apk/world", body: "alpine-baselayout\nbusybox\n"},
		{name: "etc/apk/keys/" + testKeyName, body: keyPEM},
		{name: "lib/apk/db/installed", body: ""},
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "bin/busybox" || !strings.Contains(applet, "/") {
			continue
		}
		entries = append(entries, tarEntry{name: applet, typ: tar.TypeSymlink, link: "/bin/busybox", mode: 0o777})
	}
	return tarGz(t, entries, true)
}

// mirror is a test Alpine mirror.
type mirror struct {
	URL    string
	dir    string
	key    signer
	tarSum string

	mu    sync.Mutex
	hits  map[string]int
	drops map[string]int // path -> connections still to cut mid-body
}

func (m *mirror) count(p string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hits[p]
}

func (m *mirror) put(t testing.TB, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(m.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	releasesPath = "/v3.22/releases/x86_64/"
	tarballName  = "alpine-minirootfs-3.22.1-x86_64.tar.gz"
	mainPath     = "/v3.22/main/x86_64/"
)

func newMirror(t testing.TB) *mirror {
	t.Helper()
	m := &mirror{dir: t.TempDir(), key: newSigner(t, testKeyName), hits: map[string]int{}, drops: map[string]int{}}
	tarball := makeMinirootfs(t, m.key.publicPEM(t))
	sum := sha256.Sum256(tarball)
	m.tarSum = hex.EncodeToString(sum[:])
	m.put(t, releasesPath+tarballName, tarball)
	m.put(t, releasesPath+tarballName+".sha256", []byte(m.tarSum+"  "+tarballName+"\n"))
	m.put(t, releasesPath+"latest-releases.yaml", []byte(fmt.Sprintf(`---
-
  title: "Standard"
  flavor: alpine-standard
  arch: x86_64
  version: %[1]s
  file: alpine-standard-%[1]s-x86_64.iso
  sha256: 0000000000000000000000000000000000000000000000000000000000000000
-
  title: "Mini root filesystem"
  desc: "Minimal root filesystem.\nFor use in containers\nand minimal chroots."
  profile: minirootfs
  date: 2025-07-15
  arch: x86_64
  version: %[1]s
  flavor: alpine-minirootfs
  file: %[2]s
  iso: %[2]s
  size: %[3]d
  sha256: %[4]s
`, testRelease, tarballName, len(tarball), m.tarSum)))
	m.putApkTools(t, m.key, m.key, nil)
	fs := http.FileServer(http.Dir(m.dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.hits[r.URL.Path]++
		drop := m.drops[r.URL.Path] > 0
		if drop {
			m.drops[r.URL.Path]--
		}
		m.mu.Unlock()
		if drop {
			b, _ := os.ReadFile(filepath.Join(m.dir, r.URL.Path))
			conn, buf, _ := w.(http.Hijacker).Hijack()
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(b))
			buf.Write(b[:len(b)/2])
			buf.Flush()
			conn.Close()
			return
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// putApkTools publishes apk-tools-static: the index signed by indexKey,
// the package by pkgKey; tamper, when set, edits the package bytes or the
// index text before publishing.
func (m *mirror) putApkTools(t testing.TB, indexKey, pkgKey signer, tamper func(apk []byte, index string) ([]byte, string)) {
	t.Helper()
	apk, csum := makeApk(t, pkgKey, apkStaticPackage, apkVersion, []tarEntry{
		{name: "sbin/", typ: tar.TypeDir, mode: 0o755},
		{name: apkStaticPath, body: recorder, mode: 0o755},
	})
	index := fmt.Sprintf("C:Q1aaaaaaaaaaaaaaaaaaaaaaaaaaa=\nP:busybox\nV:1.37.0-r18\nA:x86_64\nS:500000\n\n"+
		"C:%s\nP:%s\nV:%s\nA:x86_64\nS:%d\nD:\n\n", csum, apkStaticPackage, apkVersion, len(apk))
	if tamper != nil {
		apk, index = tamper(apk, index)
	}
	m.put(t, mainPath+apkStaticPackage+"-"+apkVersion+".apk", apk)
	m.put(t, mainPath+"APKINDEX.tar.gz", makeIndex(t, indexKey, index))
}

func (m *mirror) source() Source { return Source{Mirror: m.URL, Version: testVersion, Arch: "x86_64"} }

func testFetcher(t testing.TB) *download.Fetcher {
	return download.New(download.Options{CacheDir: t.TempDir(), Backoff: time.Millisecond,
		Progress: &progress.Options{Out: io.Discard}})
}
