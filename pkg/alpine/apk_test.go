package alpine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/pkg/download"
)

// PackageInstaller is the interface the firmware code takes; the Runner
// must satisfy it.
type PackageInstaller interface {
	Install(ctx context.Context, packages []string) error
}

var _ PackageInstaller = (*Runner)(nil)

// keysDir writes the mirror's public key where a minirootfs has it.
func keysDir(t *testing.T, m *mirror) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "keys")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, testKeyName), []byte(m.key.publicPEM(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func bootstrapOpts(t *testing.T, m *mirror) BootstrapOptions {
	return BootstrapOptions{Source: m.source(), KeysDir: keysDir(t, m), Dir: filepath.Join(t.TempDir(), "apk-tools"),
		Fetcher: testFetcher(t), IgnoreHostApk: true}
}

func TestBootstrapApkVerifiesAndCaches(t *testing.T) {
	m := newMirror(t)
	opt := bootstrapOpts(t, m)
	bin, err := FindApk(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, bin); got != recorder {
		t.Errorf("apk.static content differs from the package's")
	}
	if st, _ := os.Stat(bin); st.Mode().Perm()&0o111 == 0 {
		t.Errorf("apk.static is not executable: %v", st.Mode())
	}
	again, err := BootstrapApk(context.Background(), opt)
	if err != nil || again != bin {
		t.Fatalf("second bootstrap: %s, %v", again, err)
	}
	if n := m.count(mainPath + apkStaticPackage + "-" + apkVersion + ".apk"); n != 1 {
		t.Errorf("package downloaded %d times, want 1", n)
	}
}

func TestBootstrapApkRejectsTampering(t *testing.T) {
	stranger := newSigner(t, "stranger@example.org-1.rsa.pub")
	tests := []struct {
		name    string
		publish func(m *mirror)
		want    error
	}{
		{"index signed by an unknown key", func(m *mirror) { m.putApkTools(t, stranger, m.key, nil) }, ErrSignature},
		{"package signed by an unknown key", func(m *mirror) { m.putApkTools(t, m.key, stranger, nil) }, ErrSignature},
		{"index checksum does not match the package", func(m *mirror) {
			m.putApkTools(t, m.key, m.key, func(apk []byte, idx string) ([]byte, string) {
				return apk, replaceChecksum(idx)
			})
		}, download.ErrChecksum},
		{"data member replaced", func(m *mirror) {
			m.putApkTools(t, m.key, m.key, func(apk []byte, idx string) ([]byte, string) {
				parts, _ := splitGzip(apk)
				evil := tarGz(t, []tarEntry{{name: apkStaticPath, body: "#!/bin/sh\necho pwned\n", mode: 0o755}}, true)
				return append(append(append([]byte{}, parts[0]...), parts[1]...), evil...), idx
			})
		}, download.ErrChecksum},
		{"index not signed", func(m *mirror) {
			m.put(t, mainPath+"APKINDEX.tar.gz", tarGz(t, []tarEntry{{name: "APKINDEX", body: "P:apk-tools-static\n"}}, true))
		}, ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMirror(t)
			tt.publish(m)
			opt := bootstrapOpts(t, m)
			_, err := BootstrapApk(context.Background(), opt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if ents, _ := os.ReadDir(opt.Dir); len(ents) != 0 {
				t.Errorf("something was kept after a failed verification: %v", ents)
			}
		})
	}
}

// replaceChecksum swaps the apk-tools-static C: value for another valid one.
func replaceChecksum(idx string) string {
	var out []string
	blocks := strings.Split(idx, "\n\n")
	for _, b := range blocks {
		if strings.Contains(b, "P:"+apkStaticPackage) {
			lines := strings.Split(b, "\n")
			lines[0] = "C:Q1" + strings.Repeat("A", 27) + "="
			b = strings.Join(lines, "\n")
		}
		out = append(out, b)
	}
	return strings.Join(out, "\n\n")
}

func TestBootstrapApkWithoutKeys(t *testing.T) {
	m := newMirror(t)
	opt := bootstrapOpts(t, m)
	opt.KeysDir = t.TempDir()
	if _, err := BootstrapApk(context.Background(), opt); err == nil || !strings.Contains(err.Error(), "no RSA public key") {
		t.Errorf("err = %v", err)
	}
}

// recording sets up the recording script as the apk program and returns
// it with the prefix of the files it writes.
func recording(t *testing.T) (apk, record string) {
	t.Helper()
	dir := t.TempDir()
	apk = filepath.Join(dir, "apk.static")
	if err := os.WriteFile(apk, []byte(recorder), 0o755); err != nil {
		t.Fatal(err)
	}
	record = filepath.Join(dir, "record")
	t.Setenv("APK_RECORD", record)
	return apk, record
}

func TestContractApkRunnerCommandLine(t *testing.T) {
	apk, record := recording(t)
	root := filepath.Join(t.TempDir(), "initramfs")
	r := &Runner{Apk: apk, Root: root, Arch: "x86_64", UserNamespace: UserNSNever}
	pkgs := []Package{{Spec: "busybox", File: "config/packages.list", Line: 1}, {Spec: "busybox-extras>=1.36", File: "config/packages.list", Line: 2}}
	if err := r.Add(context.Background(), pkgs); err != nil {
		t.Fatal(err)
	}
	want := []string{"add", "--root", root, "--repositories-file", root + "/etc/apk/repositories",
		"--keys-dir", root + "/etc/apk/keys", "--arch", "x86_64", "--no-cache", "--no-progress",
		"busybox", "busybox-extras>=1.36"}
	if got := strings.Fields(readFile(t, record+".args")); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("apk ran with\n%q\nwant\n%q", got, want)
	}

	// A firmware staging root: fresh database, no scripts, own repositories.
	r = &Runner{Apk: apk, Root: root, RepositoriesFile: "/tmp/repos", KeysDir: "/tmp/keys", InitDB: true, NoScripts: true, UserNamespace: UserNSNever}
	if err := r.Install(context.Background(), []string{"linux-firmware-rtl_nic"}); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, record+".args")
	for _, w := range []string{"--initdb\n", "--no-scripts\n", "--repositories-file\n/tmp/repos\n", "--keys-dir\n/tmp/keys\n", "linux-firmware-rtl_nic\n"} {
		if !strings.Contains(got, w) {
			t.Errorf("args %q lack %q", got, w)
		}
	}
}

func TestContractApkRunnerUserNamespace(t *testing.T) {
	apk, record := recording(t)
	r := &Runner{Apk: apk, Root: t.TempDir(), UserNamespace: UserNSAlways}
	if err := r.Install(context.Background(), []string{"busybox"}); err != nil {
		t.Fatal(err)
	}
	if uid := strings.TrimSpace(readFile(t, record+".uid")); uid != "0" {
		t.Errorf("apk ran as uid %s inside the namespace, want 0", uid)
	}
	want := []string{"0", strconv.Itoa(os.Getuid()), "1"}
	if got := strings.Fields(readFile(t, record+".uidmap")); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("uid_map %v, want %v (caller mapped to root, nothing else)", got, want)
	}

	// Without a namespace the process sees the initial, full uid map.
	r.UserNamespace = UserNSNever
	if err := r.Install(context.Background(), []string{"busybox"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(readFile(t, record+".uidmap")); len(got) == 3 && got[2] == "1" {
		t.Errorf("UserNSNever still ran in a user namespace: %v", got)
	}
	if (&Runner{}).useUserNS() != (os.Geteuid() != 0) {
		t.Error("UserNSAuto must use a namespace exactly when not root")
	}
}

func TestContractApkRunnerMissingPackage(t *testing.T) {
	apk, _ := recording(t)
	r := &Runner{Apk: apk, Root: t.TempDir(), UserNamespace: UserNSNever}
	pkgs := []Package{
		{Spec: "busybox", File: "config/packages.list", Line: 2},
		{Spec: "nosuchpkg>=1.0", File: "config/packages.list", Line: 7},
	}
	err := r.Add(context.Background(), pkgs)
	if !errors.Is(err, ErrApk) {
		t.Fatalf("err = %v, want ErrApk", err)
	}
	var ie *InstallError
	if !errors.As(err, &ie) || len(ie.Culprits) != 1 || ie.Culprits[0].Line != 7 {
		t.Fatalf("culprits = %+v", ie)
	}
	for _, w := range []string{"nosuchpkg (no such package)", "config/packages.list:7: nosuchpkg>=1.0"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "packages.list:2") {
		t.Errorf("error blames busybox: %q", err)
	}
}

func TestContractApkBootstrapThenInstall(t *testing.T) {
	m := newMirror(t)
	root := filepath.Join(t.TempDir(), "root")
	f := testFetcher(t)
	if _, err := Extract(context.Background(), ExtractOptions{Source: m.source(), InstallDir: root, Fetcher: f}); err != nil {
		t.Fatal(err)
	}
	if err := Configure(root, ConfigureOptions{Source: m.source()}); err != nil {
		t.Fatal(err)
	}
	apk, err := FindApk(context.Background(), BootstrapOptions{Source: m.source(), KeysDir: filepath.Join(root, "etc/apk/keys"),
		Dir: t.TempDir(), Fetcher: f, IgnoreHostApk: true})
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(t.TempDir(), "rec")
	t.Setenv("APK_RECORD", record)
	r := &Runner{Apk: apk, Root: root, UserNamespace: UserNSAlways}
	if err := r.Add(context.Background(), []Package{{Spec: "eudev", File: "config/packages.list", Line: 4}}); err != nil {
		t.Fatal(err)
	}
	if args := readFile(t, record+".args"); !bytes.Contains([]byte(args), []byte("--keys-dir\n"+root+"/etc/apk/keys\n")) {
		t.Errorf("args = %q", args)
	}
}
