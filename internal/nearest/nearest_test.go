package nearest

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	known := []string{"ALPINE_VERSION", "ALPINE_MIRROR", "KERNEL_VERSION", "xhci_pci", "xhci_hcd"}
	for _, tt := range []struct {
		name string
		want string
	}{
		{"ALPINE_VERISON", "ALPINE_VERSION"},
		{"alpine_version", "ALPINE_VERSION"}, // case-insensitive
		{"xhci-pci", "xhci_pci,xhci_hcd"},    // '-' and '_' are equal; exact first
		{"xhci_pcx", "xhci_pci,xhci_hcd"},    // closest first
		{"TOTALLY_DIFFERENT", ""},            // too far to be a typo
	} {
		if got := strings.Join(Names(tt.name, known, 2), ","); got != tt.want {
			t.Errorf("Names(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"after", "afer", 1}} {
		if got := Distance(tt.a, tt.b); got != tt.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.d)
		}
	}
}
