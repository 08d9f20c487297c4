package sbom

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Diff is what changed from image A to image B.
type Diff struct {
	A Side `json:"a"`
	B Side `json:"b"`
	// BuildID is set when the build ids differ (always, between two builds).
	BuildID    *Change           `json:"build_id,omitempty"`
	Kernel     []FieldChange     `json:"kernel,omitempty"`
	Packages   []PackageChange   `json:"packages,omitempty"`
	Components []ComponentChange `json:"components,omitempty"`
	// Modules and Firmware are the image's kernel modules and firmware
	// files that were added, removed or changed.
	Modules  []FileChange  `json:"modules,omitempty"`
	Firmware []FileChange  `json:"firmware,omitempty"`
	Flists   []FlistChange `json:"flists,omitempty"`
	// Files are the other files of the image whose content changed, or
	// that were added or removed: package, component and config files,
	// and files nothing explains.
	Files []FileChange `json:"files,omitempty"`
	// Generated are the files build stages derive from other inputs (build
	// id, branding, depmod indexes, load lists, flist manifests): they
	// change as a consequence of the changes above.
	Generated []FileChange `json:"generated,omitempty"`
	// Notes say what could not be compared (an image without an SBOM,
	// flists whose file lists only one side has).
	Notes []string `json:"notes,omitempty"`
}

// Side names one of the compared images.
type Side struct {
	Path    string `json:"path"`
	Format  string `json:"format"`
	BuildID string `json:"build_id"`
	HasSBOM bool   `json:"has_sbom"`
}

// Change is a value that changed.
type Change struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// FieldChange is a named value that changed.
type FieldChange struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// Status says how an element changed.
type Status string

// Statuses.
const (
	Added   Status = "added"
	Removed Status = "removed"
	Changed Status = "changed"
)

func (s Status) sign() string {
	switch s {
	case Added:
		return "+"
	case Removed:
		return "-"
	}
	return "~"
}

// PackageChange is an apk package added, removed or changed (version or
// other fields).
type PackageChange struct {
	Name    string        `json:"name"`
	Status  Status        `json:"status"`
	Version Change        `json:"version"`
	Fields  []FieldChange `json:"fields,omitempty"`
}

// ComponentChange is a component added, removed or changed (revision,
// version, source, recipe, binary...).
type ComponentChange struct {
	Name   string        `json:"name"`
	Status Status        `json:"status"`
	Fields []FieldChange `json:"fields,omitempty"`
}

// FileChange is a file added, removed or whose content changed.
type FileChange struct {
	Path   string `json:"path"`
	Status Status `json:"status"`
	Kind   Kind   `json:"kind,omitempty"`
	Owner  string `json:"owner,omitempty"`
	Size   Change `json:"size"`
	SHA256 Change `json:"sha256"`
}

// FlistChange is an flist whose manifest changed, with the files that
// changed inside it when both sides list them.
type FlistChange struct {
	Kind   string       `json:"kind"`
	Status Status       `json:"status"`
	Name   Change       `json:"name"`
	SHA256 Change       `json:"sha256"`
	Routes []Change     `json:"routes,omitempty"`
	Files  []FileChange `json:"files,omitempty"`
}

// Empty reports whether nothing but the build id differs.
func (d *Diff) Empty() bool {
	return len(d.Kernel)+len(d.Packages)+len(d.Components)+len(d.Modules)+len(d.Firmware)+
		len(d.Flists)+len(d.Files)+len(d.Generated) == 0
}

// Compare compares two images.
func Compare(a, b *Image) *Diff {
	ia, ib := a.Inventory, b.Inventory
	d := &Diff{
		A: Side{Path: a.Path, Format: a.Format, BuildID: ia.BuildID, HasSBOM: a.HasSBOM},
		B: Side{Path: b.Path, Format: b.Format, BuildID: ib.BuildID, HasSBOM: b.HasSBOM},
	}
	if ia.BuildID != ib.BuildID {
		d.BuildID = &Change{ia.BuildID, ib.BuildID}
	}
	for _, s := range []Side{d.A, d.B} {
		if !s.HasSBOM {
			d.Notes = append(d.Notes, s.Path+" carries no SBOM: components, kernel config and flist routes are not compared")
		}
	}
	d.Kernel = fields(
		[3]string{"version", ia.Kernel.Version, ib.Kernel.Version},
		[3]string{"full version", ia.Kernel.FullVersion, ib.Kernel.FullVersion},
		[3]string{"config sha256", ia.Kernel.ConfigSHA256, ib.Kernel.ConfigSHA256},
	)
	d.Packages = comparePackages(ia.Packages, ib.Packages)
	d.Components = compareComponents(ia.Components, ib.Components)
	for _, c := range compareFiles(ia.Files, ib.Files) {
		switch c.Kind {
		case KindModule:
			d.Modules = append(d.Modules, c)
		case KindFirmware:
			d.Firmware = append(d.Firmware, c)
		case KindGenerated:
			d.Generated = append(d.Generated, c)
		default:
			d.Files = append(d.Files, c)
		}
	}
	d.Flists, d.Notes = compareFlists(ia.Flists, ib.Flists, d.Notes)
	return d
}

// fields returns the triples {name, from, to} whose values differ; a value
// one side does not know ("") is not a change.
func fields(triples ...[3]string) []FieldChange {
	var out []FieldChange
	for _, t := range triples {
		if t[1] != t[2] && t[1] != "" && t[2] != "" {
			out = append(out, FieldChange{t[0], t[1], t[2]})
		}
	}
	return out
}

func comparePackages(a, b []Package) []PackageChange {
	var out []PackageChange
	for _, m := range match(a, b, func(p Package) string { return p.Name }) {
		x, y := m.a, m.b
		switch {
		case x == nil:
			out = append(out, PackageChange{Name: y.Name, Status: Added, Version: Change{To: y.Version}})
		case y == nil:
			out = append(out, PackageChange{Name: x.Name, Status: Removed, Version: Change{From: x.Version}})
		default:
			f := fields(
				[3]string{"version", x.Version, y.Version},
				[3]string{"origin", x.Origin, y.Origin},
				[3]string{"license", x.License, y.License},
				[3]string{"apk checksum", x.Checksum, y.Checksum},
			)
			if len(f) > 0 {
				out = append(out, PackageChange{Name: x.Name, Status: Changed, Version: Change{x.Version, y.Version}, Fields: f})
			}
		}
	}
	return out
}

func compareComponents(a, b []Component) []ComponentChange {
	var out []ComponentChange
	for _, m := range match(a, b, func(c Component) string { return c.Name }) {
		x, y := m.a, m.b
		switch {
		case x == nil:
			out = append(out, ComponentChange{Name: y.Name, Status: Added})
		case y == nil:
			out = append(out, ComponentChange{Name: x.Name, Status: Removed})
		default:
			f := fields(
				[3]string{"type", x.Type, y.Type},
				[3]string{"source", x.Source, y.Source},
				[3]string{"version", x.Version, y.Version},
				[3]string{"revision", x.Revision, y.Revision},
				[3]string{"checksum", x.Checksum, y.Checksum},
				[3]string{"recipe", x.Recipe, y.Recipe},
				[3]string{"install path", x.InstallPath, y.InstallPath},
				[3]string{"binary sha256", x.BinarySHA256, y.BinarySHA256},
			)
			if len(f) > 0 {
				out = append(out, ComponentChange{Name: x.Name, Status: Changed, Fields: f})
			}
		}
	}
	return out
}

// compareFiles compares two file lists by path: size and content (SHA-256;
// the block keys' hash for flist files read from a manifest).
func compareFiles(a, b []File) []FileChange {
	var out []FileChange
	for _, m := range match(a, b, func(f File) string { return f.Path }) {
		x, y := m.a, m.b
		switch {
		case x == nil:
			out = append(out, FileChange{Path: y.Path, Status: Added, Kind: y.Kind, Owner: y.Owner,
				Size: Change{To: fmt.Sprint(y.Size)}, SHA256: Change{To: y.SHA256}})
		case y == nil:
			out = append(out, FileChange{Path: x.Path, Status: Removed, Kind: x.Kind, Owner: x.Owner,
				Size: Change{From: fmt.Sprint(x.Size)}, SHA256: Change{From: x.SHA256}})
		case x.Size != y.Size || !sameContent(*x, *y):
			out = append(out, FileChange{Path: y.Path, Status: Changed, Kind: y.Kind, Owner: y.Owner,
				Size: Change{fmt.Sprint(x.Size), fmt.Sprint(y.Size)}, SHA256: Change{x.SHA256, y.SHA256}})
		}
	}
	return out
}

func sameContent(x, y File) bool {
	switch {
	case x.SHA256 != "" && y.SHA256 != "":
		return x.SHA256 == y.SHA256
	case x.blocks != "" && y.blocks != "":
		return x.blocks == y.blocks
	}
	return true // only the sizes can be compared
}

// compareFlists pairs flists by kind (their names carry versions and dates)
// and compares their manifests and, when both sides list them, files.
func compareFlists(a, b []Flist, notes []string) ([]FlistChange, []string) {
	key := func(f Flist) string {
		if f.Kind != "" {
			return f.Kind
		}
		return f.Name
	}
	var out []FlistChange
	for _, m := range match(a, b, key) {
		x, y := m.a, m.b
		switch {
		case x == nil:
			out = append(out, FlistChange{Kind: y.Kind, Status: Added, Name: Change{To: y.Name}, SHA256: Change{To: y.SHA256}})
		case y == nil:
			out = append(out, FlistChange{Kind: x.Kind, Status: Removed, Name: Change{From: x.Name}, SHA256: Change{From: x.SHA256}})
		case x.SHA256 != y.SHA256 || strings.Join(x.Routes, " ") != strings.Join(y.Routes, " "):
			c := FlistChange{Kind: y.Kind, Status: Changed, Name: Change{x.Name, y.Name}, SHA256: Change{x.SHA256, y.SHA256}}
			if r := strings.Join(x.Routes, " "); r != strings.Join(y.Routes, " ") {
				c.Routes = []Change{{r, strings.Join(y.Routes, " ")}}
			}
			if x.FilesListed && y.FilesListed {
				c.Files = compareFiles(x.Files, y.Files)
			} else {
				notes = append(notes, fmt.Sprintf("flist %s: its file list is known on one side only; compare the dist/sbom.spdx.json files or the archives for it", y.Name))
			}
			out = append(out, c)
		}
	}
	return out, notes
}

// pair is an element of A and its namesake in B; either may be nil.
type pair[T any] struct{ a, b *T }

// match pairs the elements of a and b by key, in key order.
func match[T any](a, b []T, key func(T) string) []pair[T] {
	m := map[string]*pair[T]{}
	for i := range a {
		m[key(a[i])] = &pair[T]{a: &a[i]}
	}
	for i := range b {
		k := key(b[i])
		if p, ok := m[k]; ok {
			p.b = &b[i]
		} else {
			m[k] = &pair[T]{b: &b[i]}
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]pair[T], len(keys))
	for i, k := range keys {
		out[i] = *m[k]
	}
	return out
}

// WriteText writes the diff as a short summary for people.
func (d *Diff) WriteText(w io.Writer) error {
	p := &printer{w: w}
	p.line("A: %s (%s, build %s)", d.A.Path, d.A.Format, orUnknown(d.A.BuildID))
	p.line("B: %s (%s, build %s)", d.B.Path, d.B.Format, orUnknown(d.B.BuildID))
	if d.Empty() {
		p.line("no differences")
	}
	if len(d.Kernel) > 0 {
		p.line("kernel:")
		for _, f := range d.Kernel {
			p.line("  ~ %s: %s -> %s", f.Field, f.From, f.To)
		}
	}
	p.section("packages", len(d.Packages))
	for _, c := range d.Packages {
		switch c.Status {
		case Added:
			p.line("  + %s %s", c.Name, c.Version.To)
		case Removed:
			p.line("  - %s %s", c.Name, c.Version.From)
		default:
			p.line("  ~ %s %s", c.Name, fieldList(c.Fields))
		}
	}
	p.section("components", len(d.Components))
	for _, c := range d.Components {
		p.line("  %s %s %s", c.Status.sign(), c.Name, fieldList(c.Fields))
	}
	p.files("modules", d.Modules)
	p.files("firmware", d.Firmware)
	p.section("flists", len(d.Flists))
	for _, f := range d.Flists {
		name := f.Name.To
		if name == "" {
			name = f.Name.From
		}
		p.line("  %s %s (%s): sha256 %s -> %s", f.Status.sign(), name, f.Kind, short(f.SHA256.From), short(f.SHA256.To))
		for _, r := range f.Routes {
			p.line("      route %s -> %s", r.From, r.To)
		}
		for _, c := range f.Files {
			p.line("      %s", fileLine(c))
		}
	}
	p.files("files", d.Files)
	p.files("generated files (follow from the changes above)", d.Generated)
	for _, n := range d.Notes {
		p.line("note: %s", n)
	}
	return p.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

func (p *printer) section(name string, n int) {
	if n > 0 {
		p.line("%s: %d changed", name, n)
	}
}

func (p *printer) files(name string, fs []FileChange) {
	p.section(name, len(fs))
	for _, c := range fs {
		p.line("  %s", fileLine(c))
	}
}

func fileLine(c FileChange) string {
	owner := ""
	if c.Owner != "" {
		owner = " [" + c.Owner + "]"
	}
	switch c.Status {
	case Added:
		return fmt.Sprintf("+ %s%s (%s bytes)", c.Path, owner, c.Size.To)
	case Removed:
		return fmt.Sprintf("- %s%s", c.Path, owner)
	}
	return fmt.Sprintf("~ %s%s (%s -> %s bytes, sha256 %s -> %s)", c.Path, owner, c.Size.From, c.Size.To, short(c.SHA256.From), short(c.SHA256.To))
}

func fieldList(fs []FieldChange) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("%s %s -> %s", f.Field, short(f.From), short(f.To)))
	}
	return strings.Join(parts, ", ")
}

// short abbreviates hex digests for the summary (the JSON has them whole).
func short(s string) string {
	if len(s) == 64 || len(s) == 40 {
		return s[:12]
	}
	if s == "" {
		return "?"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
