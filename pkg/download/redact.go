package download

import "github.com/threefoldtech/zosbuilder/internal/redact"

// Redact is redact.MaskURL.
//
// Deprecated: use redact.MaskURL. Kept for pkg/kernel/source.go, which
// another change rewrites; remove it when that change has landed.
func Redact(rawURL string) string { return redact.MaskURL(rawURL) }
