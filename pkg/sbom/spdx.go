package sbom

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
)

// Names and ids of the fixed elements of the document.
const (
	idImage       = "Image"
	idKernel      = "Kernel"
	idKernelConf  = "KernelConfig"
	idInitramfs   = "Initramfs"
	idModules     = "Modules"
	idConfig      = "Config"
	idGenerated   = "Generated"
	prefixApk     = "Package-"
	prefixComp    = "Component-"
	prefixFwDir   = "FirmwareDir-"
	prefixFlist   = "Flist-"
	prefixFile    = "File-"
	imageName     = "zero-os"
	initramfsName = "initramfs"
	configName    = "zosbuilder-config"
	generatedName = "zosbuilder-generated"
	kernelName    = "linux"
	// namespaceBase prefixes the document namespace; the rest is derived
	// from the document's content.
	namespaceBase = "https://github.com/threefoldtech/zosbuilder/spdx/"
	creator       = "zosbuilder"
	noAssertion   = "NOASSERTION"
)

// Marshal writes inv as an SPDX 2.3 JSON document, indented for reading.
// The same inventory always gives the same bytes.
func Marshal(inv *Inventory) ([]byte, error) { return marshal(inv, "  ") }

// MarshalCompact writes inv without indentation (the embedded copy).
func MarshalCompact(inv *Inventory) ([]byte, error) { return marshal(inv, "") }

func marshal(inv *Inventory, indent string) ([]byte, error) {
	doc := Document(inv)
	// The namespace is a hash of everything else: same content, same
	// namespace; any change, a new one.
	var probe bytes.Buffer
	if err := spdxjson.Write(doc, &probe, spdxjson.EscapeHTML(false)); err != nil {
		return nil, fmt.Errorf("sbom: encode: %w", err)
	}
	sum := sha256.Sum256(probe.Bytes())
	doc.DocumentNamespace = namespaceBase + doc.DocumentName + "-" + hex.EncodeToString(sum[:16])
	var out bytes.Buffer
	opts := []spdxjson.WriteOption{spdxjson.EscapeHTML(false)}
	if indent != "" {
		opts = append(opts, spdxjson.Indent(indent))
	}
	if err := spdxjson.Write(doc, &out, opts...); err != nil {
		return nil, fmt.Errorf("sbom: encode: %w", err)
	}
	return out.Bytes(), nil
}

// Document converts inv into an SPDX 2.3 document: the image (described by
// the document) contains the kernel and the initramfs; the initramfs
// contains the apk packages, the components, the modules, the firmware
// entries, the project's config and the generated files, each containing
// its files; the kernel and its modules are generated from the kernel
// config; the image depends at run time on its flists, which contain their
// files. Elements and relationships are sorted.
func Document(inv *Inventory) *spdx.Document {
	b := &builder{inv: inv}
	b.top()
	for _, p := range inv.Packages {
		b.apk(p)
	}
	for _, c := range inv.Components {
		b.component(c)
	}
	for _, f := range inv.Firmware {
		b.pkg(prefixFwDir+f.Name, f.Package(), "", "OTHER", kv{{"source", "FIRMWARE_DIR/" + f.Name}})
		b.rel(idInitramfs, common.TypeRelationshipContains, prefixFwDir+f.Name)
	}
	for _, f := range inv.Files {
		b.file(imageScope, f, b.imageOwner(f))
	}
	for _, fl := range inv.Flists {
		b.flist(fl)
	}
	b.verificationCodes()
	sort.Slice(b.doc.Packages, func(i, j int) bool {
		return b.doc.Packages[i].PackageSPDXIdentifier < b.doc.Packages[j].PackageSPDXIdentifier
	})
	sort.Slice(b.doc.Files, func(i, j int) bool {
		return b.doc.Files[i].FileSPDXIdentifier < b.doc.Files[j].FileSPDXIdentifier
	})
	sort.Slice(b.doc.Relationships, func(i, j int) bool {
		x, y := b.doc.Relationships[i], b.doc.Relationships[j]
		if x.RefA.ElementRefID != y.RefA.ElementRefID {
			return x.RefA.ElementRefID < y.RefA.ElementRefID
		}
		if x.Relationship != y.Relationship {
			return x.Relationship < y.Relationship
		}
		return x.RefB.ElementRefID < y.RefB.ElementRefID
	})
	sort.Slice(b.doc.OtherLicenses, func(i, j int) bool {
		return b.doc.OtherLicenses[i].LicenseIdentifier < b.doc.OtherLicenses[j].LicenseIdentifier
	})
	return b.doc
}

type builder struct {
	inv      *Inventory
	doc      *spdx.Document
	licenses map[string]bool
}

// kv is an ordered list of "key: value" lines: the comments that carry
// what SPDX has no field for, in a form Read parses back.
type kv [][2]string

func (k kv) String() string {
	var lines []string
	for _, p := range k {
		if p[1] != "" {
			lines = append(lines, p[0]+": "+p[1])
		}
	}
	return strings.Join(lines, "\n")
}

func (b *builder) top() {
	inv := b.inv
	b.doc = &spdx.Document{
		SPDXVersion:    spdx.Version,
		DataLicense:    spdx.DataLicense,
		SPDXIdentifier: "DOCUMENT",
		DocumentName:   imageName + "-" + sanitize(inv.BuildID),
		DocumentComment: "Zero-OS image " + inv.BuildID + ": vmlinuz.efi with its initramfs and the rfs flists it mounts. " +
			"Written by zosbuilder (mage build); read it back with mage image:sbom, compare two with mage image:diff.",
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: creator}},
			Created:  inv.Created.UTC().Format(time.RFC3339),
		},
	}
	b.pkg(idImage, imageName, inv.BuildID, "OPERATING-SYSTEM", kv{{"build id", inv.BuildID}, {"alpine", inv.Alpine}})
	b.doc.Packages[0].PackageFileName = "vmlinuz.efi"
	b.rel("DOCUMENT", common.TypeRelationshipDescribe, idImage)

	k := inv.Kernel
	b.pkg(idKernel, kernelName, k.FullVersion, "OPERATING-SYSTEM", kv{
		{"version", k.Version}, {"full version", k.FullVersion}, {"config sha256", k.ConfigSHA256}})
	b.rel(idImage, common.TypeRelationshipContains, idKernel)
	if k.ConfigSHA256 != "" {
		b.doc.Files = append(b.doc.Files, &spdx.File{
			FileName:           "./kernel.config",
			FileSPDXIdentifier: common.ElementID(idKernelConf),
			Checksums: []common.Checksum{
				{Algorithm: common.SHA1, Value: k.ConfigSHA1},
				{Algorithm: common.SHA256, Value: k.ConfigSHA256},
			},
			FileCopyrightText: noAssertion,
			FileComment:       "the kernel config the image was built with",
		})
		b.rel(idKernel, common.TypeRelationshipGeneratedFrom, idKernelConf)
	}

	b.pkg(idInitramfs, initramfsName, inv.BuildID, "ARCHIVE", nil)
	b.doc.Packages[len(b.doc.Packages)-1].PackageFileName = "initramfs.cpio.xz"
	b.rel(idImage, common.TypeRelationshipContains, idInitramfs)
	b.pkg(idModules, OwnerModules, k.FullVersion, "LIBRARY", kv{{"kernel", k.FullVersion}})
	b.rel(idInitramfs, common.TypeRelationshipContains, idModules)
	b.rel(idModules, common.TypeRelationshipGeneratedFrom, idKernel)
	b.pkg(idConfig, configName, "", "OTHER", kv{{"about", "the project's own files: /init (config/init) and the zinit units (zinit/)"}})
	b.rel(idInitramfs, common.TypeRelationshipContains, idConfig)
	b.pkg(idGenerated, generatedName, "", "OTHER", kv{{"about", "files the build stages generate: build id, branding, load lists, depmod indexes, flist manifests, apk database"}})
	b.rel(idInitramfs, common.TypeRelationshipContains, idGenerated)
}

// pkg adds a package with the fields every package has.
func (b *builder) pkg(id, name, version, purpose string, comment kv) *spdx.Package {
	p := &spdx.Package{
		PackageName:             name,
		PackageSPDXIdentifier:   common.ElementID(id),
		PackageVersion:          version,
		PackageDownloadLocation: noAssertion,
		PrimaryPackagePurpose:   purpose,
		PackageCopyrightText:    noAssertion,
		PackageComment:          comment.String(),
	}
	b.doc.Packages = append(b.doc.Packages, p)
	return p
}

func (b *builder) rel(a, typ, bID string) {
	b.doc.Relationships = append(b.doc.Relationships, &spdx.Relationship{
		RefA:         common.MakeDocElementID("", a),
		RefB:         common.MakeDocElementID("", bID),
		Relationship: typ,
	})
}

func (b *builder) apk(p Package) {
	id := prefixApk + idPart(p.Name)
	sp := b.pkg(id, p.Name, p.Version, "LIBRARY", kv{
		{"arch", p.Arch}, {"origin", p.Origin}, {"apk license", p.License}, {"apk checksum", p.Checksum}})
	sp.PackageSupplier = &common.Supplier{SupplierType: "Organization", Supplier: "Alpine Linux"}
	sp.PackageHomePage = p.URL
	sp.PackageSummary = p.Description
	sp.PackageLicenseDeclared = b.license(p.License)
	sp.PackageLicenseConcluded = noAssertion
	if algo, sum, ok := p.ChecksumHex(); ok {
		sp.PackageChecksums = []common.Checksum{{Algorithm: common.ChecksumAlgorithm(algo), Value: sum}}
	}
	sp.PackageExternalReferences = []*spdx.PackageExternalReference{{
		Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: apkPURL(p, b.inv.Alpine),
	}}
	b.rel(idInitramfs, common.TypeRelationshipContains, id)
}

// apkPURL is the package URL scanners match Alpine's security database
// with: pkg:apk/alpine/NAME@VERSION?arch=A&distro=alpine-R&upstream=ORIGIN.
func apkPURL(p Package, release string) string {
	q := url.Values{}
	if p.Arch != "" {
		q.Set("arch", p.Arch)
	}
	if release != "" {
		q.Set("distro", "alpine-"+release)
	}
	if p.Origin != "" {
		q.Set("upstream", p.Origin)
	}
	s := "pkg:apk/alpine/" + url.PathEscape(p.Name) + "@" + url.PathEscape(p.Version)
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

func (b *builder) component(c Component) {
	id := prefixComp + idPart(c.Name)
	sp := b.pkg(id, c.Name, c.Version, "APPLICATION", kv{
		{"type", c.Type}, {"source", c.Source}, {"version", c.Version}, {"revision", c.Revision},
		{"checksum", c.Checksum}, {"recipe", c.Recipe}, {"install path", c.InstallPath}, {"binary sha256", c.BinarySHA256}})
	sp.PackageFileName = c.InstallPath
	sp.PackageDownloadLocation = componentLocation(c)
	if c.BinarySHA256 != "" {
		sp.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: c.BinarySHA256}}
	}
	b.rel(idInitramfs, common.TypeRelationshipContains, id)
}

// componentLocation is SPDX's download location: git+URL@revision for a
// git URL, the URL of a release, NOASSERTION for a local path.
func componentLocation(c Component) string {
	if !strings.Contains(c.Source, "://") {
		return noAssertion
	}
	if c.Type == "git" {
		loc := "git+" + strings.TrimPrefix(c.Source, "git+")
		if rev, _, _ := strings.Cut(c.Revision, "-"); rev != "" {
			loc += "@" + rev
		}
		return loc
	}
	return c.Source
}

func (b *builder) flist(fl Flist) {
	id := prefixFlist + idPart(fl.Name)
	comment := kv{{"kind", fl.Kind}, {"mount point", fl.MountPoint}, {"files listed", strconv.FormatBool(fl.FilesListed)}}
	for _, r := range fl.Routes {
		comment = append(comment, [2]string{"route", r})
	}
	sp := b.pkg(id, fl.Name, "", "ARCHIVE", comment)
	sp.PackageFileName = fl.Name
	sp.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: fl.SHA256}}
	b.rel(idImage, common.TypeRelationshipDependsOn, id)
	for _, f := range fl.Files {
		b.file(fl.Name, f, id)
	}
}

// verificationCodes marks the packages that contain files as analyzed,
// with the verification code SPDX then requires.
func (b *builder) verificationCodes() {
	sha1s := map[common.ElementID]string{}
	for _, f := range b.doc.Files {
		for _, c := range f.Checksums {
			if c.Algorithm == common.SHA1 {
				sha1s[f.FileSPDXIdentifier] = c.Value
			}
		}
	}
	contents := map[common.ElementID][]string{}
	for _, r := range b.doc.Relationships {
		if sum, ok := sha1s[r.RefB.ElementRefID]; ok && r.Relationship == common.TypeRelationshipContains {
			contents[r.RefA.ElementRefID] = append(contents[r.RefA.ElementRefID], sum)
		}
	}
	for _, p := range b.doc.Packages {
		if files := contents[p.PackageSPDXIdentifier]; len(files) > 0 {
			p.FilesAnalyzed = true
			p.PackageVerificationCode = &common.PackageVerificationCode{Value: verificationCode(files)}
		}
	}
}

// verificationCode is SPDX's package verification code: the SHA-1 of the
// sorted, concatenated SHA-1s of the package's files.
func verificationCode(sha1s []string) string {
	s := slices.Clone(sha1s)
	slices.Sort(s)
	sum := sha1.Sum([]byte(strings.Join(s, "")))
	return hex.EncodeToString(sum[:])
}

const imageScope = ""

// imageOwner is the element that contains an image file.
func (b *builder) imageOwner(f File) string {
	switch f.Kind {
	case KindComponent:
		return prefixComp + idPart(f.Owner)
	case KindConfig:
		return idConfig
	case KindGenerated:
		return idGenerated
	case KindModule, KindFirmware, KindPackage:
		switch {
		case f.Owner == OwnerModules:
			return idModules
		case strings.HasPrefix(f.Owner, FirmwarePackagePrefix):
			return prefixFwDir + idPart(strings.TrimPrefix(f.Owner, FirmwarePackagePrefix))
		case f.Owner != "":
			return prefixApk + idPart(f.Owner)
		}
	}
	return idInitramfs
}

// file adds a File contained by owner; scope tells image files ("") from
// the files of an flist (its name) with the same path.
func (b *builder) file(scope string, f File, owner string) {
	id := prefixFile + fileID(scope, f.Path)
	b.doc.Files = append(b.doc.Files, &spdx.File{
		FileName:           "./" + f.Path,
		FileSPDXIdentifier: common.ElementID(id),
		Checksums: []common.Checksum{
			{Algorithm: common.SHA1, Value: f.SHA1},
			{Algorithm: common.SHA256, Value: f.SHA256},
		},
		FileCopyrightText: noAssertion,
		FileComment:       kv{{"size", strconv.FormatInt(f.Size, 10)}, {"kind", kindName(f.Kind)}, {"owner", f.Owner}}.String(),
	})
	b.rel(owner, common.TypeRelationshipContains, id)
}

func kindName(k Kind) string {
	if k == KindUnknown {
		return "unexplained"
	}
	return string(k)
}

func fileID(scope, p string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + p))
	return hex.EncodeToString(sum[:8])
}

// idPart makes name usable in an SPDX id (letters, digits, '.', '-'); a
// name that had to change gets a hash suffix, so two names never collide.
func idPart(name string) string {
	s := sanitize(name)
	if s == name {
		return s
	}
	sum := sha256.Sum256([]byte(name))
	return s + "-" + hex.EncodeToString(sum[:4])
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}
