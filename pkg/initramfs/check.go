package initramfs

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/threefoldtech/zosbuilder/pkg/cpio"
)

// LargestCount is how many of the largest entries a Report lists.
const LargestCount = 20

// CheckOptions tune Check.
type CheckOptions struct {
	// MaxSize fails the check when the archive file is larger
	// (INITRAMFS_MAX_SIZE, bytes); 0 turns the limit off.
	MaxSize int64
}

// Report describes a checked archive.
type Report struct {
	Path         string
	Check        string // xz integrity check ("CRC32"); "" for an uncompressed cpio
	Compressed   int64  // size of the archive file
	Uncompressed int64  // size of the cpio stream
	Entries      int
	Largest      []Entry  // the LargestCount largest files, largest first
	Problems     []string // everything wrong, all at once
}

// Entry is a name and size in a Report.
type Entry struct {
	Name string
	Size int64
}

// Check reads the archive at path completely (decompressing it with the
// Go xz decoder, which verifies every check value) and verifies what the
// kernel and /init rely on: an executable /init, /sbin/zinit, /dev/console
// as character device 5:1, an xz check the kernel accepts (CRC32 or none),
// entry names that are relative and free of "..", no duplicate names, every
// parent directory before its entries (the kernel does not create missing
// parents), and the size limit. It returns the report and, when anything is
// wrong, an error wrapping ErrInvalid (and ErrTooLarge for the size) that
// lists every problem.
func Check(ctx context.Context, path string, opt CheckOptions) (*Report, error) {
	return check(path, opt, func(fn walkFunc) (archiveInfo, error) { return readArchive(ctx, path, fn) })
}

// CheckStream is Check for the archive at the start of r, which other data
// may follow: the initramfs inside a kernel image (kernel.EmbeddedInitramfs).
// It reads one xz stream, or a plain cpio up to its trailer. name stands for
// the archive in the report and the errors. The compressed size is not
// known (Report.Compressed is 0), so opt.MaxSize does not apply.
func CheckStream(ctx context.Context, r io.Reader, name string, opt CheckOptions) (*Report, error) {
	opt.MaxSize = 0
	return check(name, opt, func(fn walkFunc) (archiveInfo, error) {
		return readStream(ctx, bufio.NewReaderSize(r, 1<<20), true, fn)
	})
}

// check runs the checks over the entries read calls its function with.
func check(path string, opt CheckOptions, read func(walkFunc) (archiveInfo, error)) (*Report, error) {
	rep := &Report{Path: path}
	idx := index{}
	info, err := read(func(h *cpio.Header, body io.Reader) error {
		rep.Entries++
		rep.Problems = append(rep.Problems, idx.add(h)...)
		if h.Type() == cpio.TypeReg {
			rep.Largest = append(rep.Largest, Entry{h.Name, h.Size})
		}
		return nil
	})
	rep.Check, rep.Compressed, rep.Uncompressed = info.check, info.compressed, info.uncompressed
	if err != nil {
		return rep, fmt.Errorf("check %s: %w: %w", path, ErrInvalid, err)
	}
	slices.SortFunc(rep.Largest, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(b.Size, a.Size), strings.Compare(a.Name, b.Name))
	})
	rep.Largest = rep.Largest[:min(len(rep.Largest), LargestCount)]

	if rep.Check != "" && rep.Check != "CRC32" && rep.Check != "None" {
		rep.Problems = append(rep.Problems, fmt.Sprintf("xz check is %s: the kernel's decoder accepts only CRC32 or none", rep.Check))
	}
	rep.Problems = append(rep.Problems, idx.required()...)
	tooLarge := opt.MaxSize > 0 && rep.Compressed > opt.MaxSize
	if tooLarge {
		rep.Problems = append(rep.Problems, fmt.Sprintf("archive is %d bytes, more than INITRAMFS_MAX_SIZE %d", rep.Compressed, opt.MaxSize))
	}
	switch {
	case tooLarge:
		return rep, fmt.Errorf("check %s: %s: %w, %w", path, strings.Join(rep.Problems, "; "), ErrInvalid, ErrTooLarge)
	case len(rep.Problems) > 0:
		return rep, fmt.Errorf("check %s: %s: %w", path, strings.Join(rep.Problems, "; "), ErrInvalid)
	}
	return rep, nil
}

// Print writes the report for a person: sizes, then the largest entries,
// then the problems.
func (r *Report) Print(w io.Writer) error {
	var b strings.Builder
	check := r.Check
	if check == "" {
		check = "uncompressed"
	}
	size := fmt.Sprintf("%s (%d bytes, xz check %s)", humanize.IBytes(uint64(r.Compressed)), r.Compressed, check)
	if r.Compressed == 0 { // read from a stream (CheckStream)
		size = "xz check " + check
	}
	fmt.Fprintf(&b, "%s: %d entries, %s, uncompressed %s (%d bytes)\n",
		r.Path, r.Entries, size, humanize.IBytes(uint64(r.Uncompressed)), r.Uncompressed)
	fmt.Fprintf(&b, "largest %d entries:\n", len(r.Largest))
	for _, e := range r.Largest {
		fmt.Fprintf(&b, "  %10s  %s\n", humanize.IBytes(uint64(e.Size)), e.Name)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "PROBLEM: %s\n", p)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// index is the archive's entries by clean name, for the checks that need
// the whole archive (symlink resolution, required files).
type index map[string]*cpio.Header

// add records h and returns the problems of its name.
func (idx index) add(h *cpio.Header) []string {
	name := h.Name
	switch {
	case name == "":
		return []string{"entry with an empty name"}
	case strings.HasPrefix(name, "/"):
		return []string{fmt.Sprintf("%s: absolute entry name", name)}
	case slices.Contains(strings.Split(name, "/"), ".."):
		return []string{fmt.Sprintf("%s: entry name contains ..", name)}
	}
	clean := path.Clean(name)
	var problems []string
	if _, dup := idx[clean]; dup {
		problems = append(problems, fmt.Sprintf("%s: duplicate entry", name))
	}
	if dir := path.Dir(clean); dir != "." {
		if d, ok := idx[dir]; !ok || (d.Type() != cpio.TypeDir && d.Type() != cpio.TypeSymlink) {
			problems = append(problems, fmt.Sprintf("%s: comes before its directory %s (the kernel would drop it)", name, dir))
		}
	}
	idx[clean] = h
	return problems
}

// required returns what is missing of the files every Zero-OS image needs.
func (idx index) required() []string {
	var problems []string
	for _, name := range []string{"init", "sbin/zinit"} {
		h, err := idx.resolve(name)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("/%s: %s", name, err))
		case h.Type() != cpio.TypeReg:
			problems = append(problems, fmt.Sprintf("/%s: not a regular file (%s)", name, h.ModeString()))
		case h.Mode&0o111 == 0:
			problems = append(problems, fmt.Sprintf("/%s: not executable (%s)", name, h.ModeString()))
		}
	}
	switch h := idx["dev/console"]; {
	case h == nil:
		problems = append(problems, "/dev/console: missing (the kernel opens it for init's output)")
	case h.Type() != cpio.TypeChar || h.RdevMajor != 5 || h.RdevMinor != 1:
		problems = append(problems, fmt.Sprintf("/dev/console: %s %d:%d, want character device 5:1", h.ModeString(), h.RdevMajor, h.RdevMinor))
	}
	return problems
}

var (
	errMissing = errors.New("missing")
	errLoop    = errors.New("too many levels of symlinks")
)

// maxLinks bounds symlink hops like the kernel's MAXSYMLINKS.
const maxLinks = 40

// resolve follows symlinks inside the archive, in every path component,
// the way the kernel would after unpacking it.
func (idx index) resolve(name string) (*cpio.Header, error) {
	parts := strings.Split(name, "/")
	cur, hops := "", 0
	for i := 0; i < len(parts); i++ {
		switch p := parts[i]; p {
		case "", ".":
			continue
		case "..":
			if cur = path.Dir(cur); cur == "." {
				cur = ""
			}
			continue
		}
		next := path.Join(cur, parts[i])
		h, ok := idx[next]
		if !ok {
			return nil, errMissing
		}
		if h.Type() != cpio.TypeSymlink {
			cur = next
			continue
		}
		if hops++; hops > maxLinks {
			return nil, errLoop
		}
		if strings.HasPrefix(h.Linkname, "/") {
			cur = ""
		}
		parts = append(strings.Split(h.Linkname, "/"), parts[i+1:]...)
		i = -1
	}
	if h, ok := idx[cur]; ok {
		return h, nil
	}
	return nil, errMissing
}
