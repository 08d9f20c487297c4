package sbom

import (
	"strings"

	"github.com/github/go-spdx/v2/spdxexp"
	"github.com/spdx/tools-golang/spdx"
)

// license turns an apk L: field into an SPDX license expression. Alpine
// mostly writes SPDX already; anything else ("custom", a typo, an old id)
// becomes a LicenseRef- whose text in the document is the field itself, so
// the document stays valid and nothing is lost.
func (b *builder) license(l string) string {
	l = strings.TrimSpace(l)
	if l == "" {
		return noAssertion
	}
	if ok, _ := spdxexp.ValidateLicenses([]string{l}); ok {
		return l
	}
	id := "LicenseRef-apk-" + idPart(l)
	if b.licenses == nil {
		b.licenses = map[string]bool{}
	}
	if !b.licenses[id] {
		b.licenses[id] = true
		b.doc.OtherLicenses = append(b.doc.OtherLicenses, &spdx.OtherLicense{
			LicenseIdentifier: id,
			ExtractedText:     l,
			LicenseName:       l,
			LicenseComment:    "the license field of Alpine packages that is not an SPDX expression",
		})
	}
	return id
}
