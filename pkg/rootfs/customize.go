package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/logging"
)

// BuildIDFile is where Customize records the build id inside the rootfs; the
// kernel stage reads it back out of the embedded initramfs.
const BuildIDFile = "/etc/zero-os-build-id"

// ErrNoRootUser is returned when /etc/passwd has no root entry.
var ErrNoRootUser = errors.New("no root user")

// CustomizeOptions selects the finishing touches of the rootfs.
type CustomizeOptions struct {
	// Branding writes the Zero-OS /etc/issue and /etc/motd (ZEROOS_BRANDING).
	Branding bool
	// BuildID is written to /etc/zero-os-build-id. When empty, Customize
	// computes BuildID(Time, GitRevision, fingerprint) with the fingerprint
	// taken after its other edits, so rerunning it on its own output gives
	// the same id.
	BuildID string
	// Time is the build time: SOURCE_DATE_EPOCH when set, for reproducible
	// ids; the zero value means now.
	Time time.Time
	// GitRevision of the builder's repository ("" when unknown).
	GitRevision string
	// Derived are files written after Customize from its result (the
	// SBOM, which records the build id), as absolute in-root paths: like
	// the branding, they are left out of the fingerprint.
	Derived []string
	Log     logrus.FieldLogger
}

// Consoles are the terminals the shipped getty units serve; root must be
// allowed to log in on them.
func consoles() []string { return []string{"console", "tty1", "ttyS0"} }

// Customize makes root passwordless in /etc/passwd and /etc/shadow (the
// original builder edited only passwd, so login still asked for a password),
// lets root log in on the consoles, writes the branding when asked, and
// writes BuildIDFile. Files are edited line by line in Go, keeping every
// other line as it was, and replaced atomically. It returns the build id and
// is idempotent.
func Customize(root string, opt CustomizeOptions) (string, error) {
	if err := setRootPasswordless(root); err != nil {
		return "", err
	}
	if err := allowConsoles(root); err != nil {
		return "", err
	}
	id := opt.BuildID
	if id == "" {
		fp, err := Fingerprint(root, append(brandingFiles(), opt.Derived...)...)
		if err != nil {
			return "", err
		}
		when := opt.Time
		if when.IsZero() {
			when = time.Now()
		}
		id = BuildID(when, opt.GitRevision, fp)
	}
	if opt.Branding {
		if err := writeBranding(root, id); err != nil {
			return "", err
		}
	}
	if err := fsutil.WriteFile(filepath.Join(root, BuildIDFile), []byte(id+"\n"), 0o644, fsutil.KeepOwner()); err != nil {
		return "", err
	}
	logging.OrDiscard(opt.Log).WithField("build_id", id).Info("rootfs customized")
	return id, nil
}

// brandingFiles are the files whose content derives from the build id; the
// fingerprint leaves them out so the id does not depend on itself.
func brandingFiles() []string {
	return []string{BuildIDFile, "/etc/issue", "/etc/motd"}
}

// BuildID formats a build id from the build time (UTC), the git revision of
// the builder (a full hash is shortened to 12 characters; "" gives
// "unknown") and a tree fingerprint (first 16 hex digits), for example
// 20251125T101500Z-g1a2b3c4d5e6f-f0123456789abcdef.
func BuildID(when time.Time, gitRevision, fingerprint string) string {
	rev := sanitizeRevision(gitRevision)
	if len(fingerprint) > 16 {
		fingerprint = fingerprint[:16]
	}
	return fmt.Sprintf("%s-g%s-f%s", when.UTC().Format("20060102T150405Z"), rev, fingerprint)
}

func sanitizeRevision(rev string) string {
	rev = strings.TrimSpace(rev)
	hash, suffix, _ := strings.Cut(rev, "-")
	if len(hash) > 12 {
		hash = hash[:12]
	}
	if suffix != "" {
		hash += "-" + suffix
	}
	clean := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '.' {
			return r
		}
		return -1
	}, hash)
	if clean == "" {
		return "unknown"
	}
	return clean
}

func writeBranding(root, id string) error {
	issue := "Zero-OS \\r (\\m) on \\l\nbuild " + id + "\n\n"
	motd := "Welcome to Zero-OS.\n\n" +
		"This system runs from RAM: changes are lost at reboot.\n" +
		"Services: zinit list, zinit status NAME, zinit log\n" +
		"Build: " + id + "\n\n"
	if err := fsutil.WriteFile(filepath.Join(root, "etc/issue"), []byte(issue), 0o644, fsutil.KeepOwner()); err != nil {
		return err
	}
	return fsutil.WriteFile(filepath.Join(root, "etc/motd"), []byte(motd), 0o644, fsutil.KeepOwner())
}

// setRootPasswordless empties root's password field in /etc/passwd and
// /etc/shadow. A missing shadow file is left missing: with an empty passwd
// field nothing consults it.
func setRootPasswordless(root string) error {
	passwd := filepath.Join(root, "etc/passwd")
	found, err := editColonFile(passwd, 7, "root", func(f []string) { f[1] = "" })
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s: %w", passwd, ErrNoRootUser)
	}
	shadow := filepath.Join(root, "etc/shadow")
	found, err = editColonFile(shadow, 9, "root", func(f []string) { f[1] = "" })
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || found {
		return err
	}
	return appendLine(shadow, "root::::::::")
}

// editColonFile applies edit to the fields of the line of a colon-separated
// database (passwd, shadow) whose first field is name, and rewrites the file
// only if that changed it. Every other byte is kept.
func editColonFile(path string, nfields int, name string, edit func([]string)) (found bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	lines := strings.SplitAfter(string(data), "\n")
	for i, l := range lines {
		body := strings.TrimRight(l, "\n")
		fields := strings.Split(body, ":")
		if fields[0] != name {
			continue
		}
		if len(fields) != nfields {
			return false, fmt.Errorf("%s:%d: %d fields, want %d", path, i+1, len(fields), nfields)
		}
		found = true
		edit(fields)
		lines[i] = strings.Join(fields, ":") + l[len(body):]
	}
	out := strings.Join(lines, "")
	if out == string(data) {
		return found, nil
	}
	return found, fsutil.WriteFile(path, []byte(out), modeOf(path), fsutil.KeepOwner())
}

func appendLine(path, line string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		data = append(data, '\n')
	}
	return fsutil.WriteFile(path, append(data, line+"\n"...), modeOf(path), fsutil.KeepOwner())
}

func modeOf(path string) fs.FileMode {
	if st, err := os.Stat(path); err == nil {
		return st.Mode().Perm()
	}
	return 0o644
}

// allowConsoles adds the consoles the getty units use to /etc/securetty when
// the file exists: busybox login refuses root on terminals it does not list.
func allowConsoles(root string) error {
	path := filepath.Join(root, "etc/securetty")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	out := data
	for _, c := range consoles() {
		if have[c] {
			continue
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(out, c+"\n"...)
	}
	if len(out) == len(data) {
		return nil
	}
	return fsutil.WriteFile(path, out, modeOf(path), fsutil.KeepOwner())
}
