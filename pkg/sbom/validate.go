package sbom

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/github/go-spdx/v2/spdxexp"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdxlib"
)

// ErrInvalid is wrapped by every problem Validate finds.
var ErrInvalid = errors.New("invalid SPDX document")

var (
	idRe       = regexp.MustCompile(`^[A-Za-z0-9.-]+$`)
	checksumRe = map[common.ChecksumAlgorithm]*regexp.Regexp{
		common.SHA1:   regexp.MustCompile(`^[0-9a-f]{40}$`),
		common.SHA256: regexp.MustCompile(`^[0-9a-f]{64}$`),
	}
	purposes = map[string]bool{"APPLICATION": true, "FRAMEWORK": true, "LIBRARY": true, "CONTAINER": true,
		"OPERATING-SYSTEM": true, "DEVICE": true, "FIRMWARE": true, "SOURCE": true, "ARCHIVE": true,
		"FILE": true, "INSTALL": true, "OTHER": true}
	relationshipTypes = map[string]bool{
		common.TypeRelationshipDescribe: true, common.TypeRelationshipContains: true,
		common.TypeRelationshipGeneratedFrom: true, common.TypeRelationshipDependsOn: true,
	}
)

// Validate checks doc against the SPDX 2.3 rules for the fields this
// package writes, beyond what the SPDX library checks (spdxlib checks only
// that relationships name existing elements): the document header; unique,
// well-formed element ids; every package's name, download location,
// purpose, license expressions (against the SPDX license list, or a
// LicenseRef- the document defines) and verification code; every file's
// name and its SHA-1 (which SPDX requires) and SHA-256; the relationship
// types. All problems are reported at once.
func Validate(doc *spdx.Document) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := spdxlib.ValidateDocument(doc); err != nil {
		bad("%w", err)
	}
	if doc.SPDXVersion != spdx.Version {
		bad("spdxVersion %q, want %s", doc.SPDXVersion, spdx.Version)
	}
	if doc.DataLicense != spdx.DataLicense {
		bad("dataLicense %q, want %s", doc.DataLicense, spdx.DataLicense)
	}
	if doc.SPDXIdentifier != "DOCUMENT" {
		bad("document SPDXID %q, want SPDXRef-DOCUMENT", doc.SPDXIdentifier)
	}
	if doc.DocumentName == "" {
		bad("document has no name")
	}
	if u, err := url.Parse(doc.DocumentNamespace); err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(doc.DocumentNamespace, "#") {
		bad("documentNamespace %q is not an absolute URI without '#'", doc.DocumentNamespace)
	}
	if ci := doc.CreationInfo; ci == nil || len(ci.Creators) == 0 {
		bad("creationInfo has no creators")
	} else if _, err := time.Parse("2006-01-02T15:04:05Z", ci.Created); err != nil {
		bad("created %q is not YYYY-MM-DDThh:mm:ssZ", ci.Created)
	}
	ids := map[common.ElementID]bool{"DOCUMENT": true}
	checkID := func(id common.ElementID) {
		if !idRe.MatchString(string(id)) {
			bad("SPDXID %q: only letters, digits, '.' and '-' may follow SPDXRef-", "SPDXRef-"+string(id))
		}
		if ids[id] {
			bad("SPDXID SPDXRef-%s used twice", id)
		}
		ids[id] = true
	}
	licenseRefs := map[string]bool{}
	for _, l := range doc.OtherLicenses {
		if !strings.HasPrefix(l.LicenseIdentifier, "LicenseRef-") || !idRe.MatchString(strings.TrimPrefix(l.LicenseIdentifier, "LicenseRef-")) {
			bad("extracted license id %q is not LicenseRef-[A-Za-z0-9.-]+", l.LicenseIdentifier)
		}
		if l.ExtractedText == "" {
			bad("extracted license %s has no text", l.LicenseIdentifier)
		}
		licenseRefs[l.LicenseIdentifier] = true
	}
	fileSHA1 := map[common.ElementID]string{}
	for _, f := range doc.Files {
		checkID(f.FileSPDXIdentifier)
		if !strings.HasPrefix(f.FileName, "./") {
			bad("file %s: name %q does not start with ./", f.FileSPDXIdentifier, f.FileName)
		}
		algos := checkChecksums(f.Checksums, bad, "file "+f.FileName)
		if algos[common.SHA1] == "" {
			bad("file %s has no SHA1 checksum (SPDX requires one)", f.FileName)
		}
		fileSHA1[f.FileSPDXIdentifier] = algos[common.SHA1]
	}
	contents := map[common.ElementID][]string{}
	for _, r := range doc.Relationships {
		if !relationshipTypes[r.Relationship] {
			bad("relationship type %q", r.Relationship)
		}
		if sum, isFile := fileSHA1[r.RefB.ElementRefID]; isFile && r.Relationship == common.TypeRelationshipContains {
			contents[r.RefA.ElementRefID] = append(contents[r.RefA.ElementRefID], sum)
		}
	}
	for _, p := range doc.Packages {
		checkID(p.PackageSPDXIdentifier)
		what := "package " + p.PackageName
		if p.PackageName == "" {
			bad("package SPDXRef-%s has no name", p.PackageSPDXIdentifier)
		}
		if p.PackageDownloadLocation == "" {
			bad("%s has no downloadLocation", what)
		}
		if p.PrimaryPackagePurpose != "" && !purposes[p.PrimaryPackagePurpose] {
			bad("%s: primaryPackagePurpose %q", what, p.PrimaryPackagePurpose)
		}
		for _, l := range []string{p.PackageLicenseDeclared, p.PackageLicenseConcluded} {
			checkLicense(l, licenseRefs, bad, what)
		}
		checkChecksums(p.PackageChecksums, bad, what)
		for _, ref := range p.PackageExternalReferences {
			if ref.RefType == common.TypePackageManagerPURL && !strings.HasPrefix(ref.Locator, "pkg:") {
				bad("%s: purl %q does not start with pkg:", what, ref.Locator)
			}
		}
		switch files := contents[p.PackageSPDXIdentifier]; {
		case p.FilesAnalyzed && p.PackageVerificationCode == nil:
			bad("%s: filesAnalyzed without a packageVerificationCode", what)
		case p.FilesAnalyzed && p.PackageVerificationCode.Value != verificationCode(files):
			bad("%s: packageVerificationCode %s does not match its files", what, p.PackageVerificationCode.Value)
		case !p.FilesAnalyzed && p.PackageVerificationCode != nil:
			bad("%s: packageVerificationCode without filesAnalyzed", what)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

func checkChecksums(sums []common.Checksum, bad func(string, ...any), what string) map[common.ChecksumAlgorithm]string {
	out := map[common.ChecksumAlgorithm]string{}
	for _, c := range sums {
		re, known := checksumRe[c.Algorithm]
		if !known {
			bad("%s: checksum algorithm %q", what, c.Algorithm)
			continue
		}
		if !re.MatchString(c.Value) {
			bad("%s: %s checksum %q is not lowercase hex of the right length", what, c.Algorithm, c.Value)
		}
		out[c.Algorithm] = c.Value
	}
	return out
}

func checkLicense(l string, refs map[string]bool, bad func(string, ...any), what string) {
	switch {
	case l == "" || l == noAssertion || l == "NONE":
	case strings.HasPrefix(l, "LicenseRef-"):
		if !refs[l] {
			bad("%s: %s is not defined in hasExtractedLicensingInfos", what, l)
		}
	default:
		if ok, invalid := spdxexp.ValidateLicenses([]string{l}); !ok {
			bad("%s: license %q is not an SPDX expression (%s)", what, l, strings.Join(invalid, ", "))
		}
	}
}
