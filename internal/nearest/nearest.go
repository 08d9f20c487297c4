// Package nearest suggests the known names closest to a mistyped one, for
// messages such as "unknown key ALPINE_VERISON (did you mean ALPINE_VERSION?)".
package nearest

import (
	"sort"
	"strings"
)

// Names returns up to n candidates closest to name by edit distance
// (case-insensitive, '-' and '_' equal), closest first, leaving out those too
// far away to be a plausible typo.
func Names(name string, candidates []string, n int) []string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	target := norm(name)
	limit := max(2, len(target)/3)
	type scored struct {
		s string
		d int
	}
	var found []scored
	for _, c := range candidates {
		if d := Distance(target, norm(c)); d <= limit {
			found = append(found, scored{c, d})
		}
	}
	sort.SliceStable(found, func(i, j int) bool {
		if found[i].d != found[j].d {
			return found[i].d < found[j].d
		}
		return found[i].s < found[j].s
	})
	var out []string
	for i := 0; i < len(found) && i < n; i++ {
		out = append(out, found[i].s)
	}
	return out
}

// Distance is the Levenshtein distance between a and b.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
