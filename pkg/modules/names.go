package modules

import (
	"path"
	"strings"
)

// Normalize returns the name kmod uses for a module name or alias: '-' is
// '_' everywhere except inside a [...] bracket expression, so "xhci-pci"
// and "xhci_pci" are the same module.
func Normalize(name string) string {
	if !strings.ContainsRune(name, '-') {
		return name
	}
	b := []byte(name)
	inBracket := false
	for i, c := range b {
		switch {
		case c == '[':
			inBracket = true
		case c == ']':
			inBracket = false
		case c == '-' && !inBracket:
			b[i] = '_'
		}
	}
	return string(b)
}

// moduleExts are the module file suffixes kmod understands, longest first.
var moduleExts = []string{".ko.zst", ".ko.xz", ".ko.gz", ".ko"}

// IsModuleFile reports whether a file name is a kernel module (.ko, .ko.xz,
// .ko.zst or .ko.gz).
func IsModuleFile(name string) bool {
	for _, ext := range moduleExts {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// NameFromPath returns the module name of a module file path, as kmod
// derives it: the base name up to its first '.', normalized.
func NameFromPath(p string) string {
	base := path.Base(p)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	return Normalize(base)
}

// uncompressedPath strips a compression suffix from a module path:
// modules.order and modules.builtin always name the plain .ko.
func uncompressedPath(p string) string {
	for _, ext := range moduleExts[:3] {
		if strings.HasSuffix(p, ext) {
			return strings.TrimSuffix(p, ext) + ".ko"
		}
	}
	return p
}

// fnmatch is fnmatch(3) without flags, as kmod uses it for aliases and
// softdep patterns: '*' and '?' also match '/', brackets take ranges and
// '!' or '^' negation, a backslash quotes the next character.
func fnmatch(pattern, name string) bool {
	px, nx := 0, 0
	nextPx, nextNx := -1, -1
	for px < len(pattern) || nx < len(name) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextNx = px, nx+1
				px++
				continue
			case '?':
				if nx < len(name) {
					px++
					nx++
					continue
				}
			case '[':
				if nx < len(name) {
					if ok, width := matchBracket(pattern[px:], name[nx]); width > 0 {
						if ok {
							px += width
							nx++
							continue
						}
						break
					}
					// An unterminated '[' is an ordinary character.
					if name[nx] == '[' {
						px++
						nx++
						continue
					}
				}
			case '\\':
				if px+1 < len(pattern) && nx < len(name) && pattern[px+1] == name[nx] {
					px += 2
					nx++
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		if nextNx > 0 && nextNx <= len(name) {
			px, nx = nextPx, nextNx
			continue
		}
		return false
	}
	return true
}

// matchBracket matches c against the bracket expression at the start of p.
// width is the length of the expression, 0 when it is not terminated.
func matchBracket(p string, c byte) (ok bool, width int) {
	i := 1
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return ok != negate, i + 1
		}
		first = false
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		hi := lo
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			i += 2
		}
		if lo <= c && c <= hi {
			ok = true
		}
		i++
	}
	return false, 0
}

// isPattern reports whether s contains fnmatch wildcards.
func isPattern(s string) bool {
	return strings.ContainsAny(s, "*?[\\")
}

// literalPrefix is the part of a pattern before its first wildcard.
func literalPrefix(s string) string {
	if i := strings.IndexAny(s, "*?[\\"); i >= 0 {
		return s[:i]
	}
	return s
}
