package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A maintainer coming from the original has units in config/zinit/: the
// build fails at once and says where they go, instead of ignoring them.
func TestOldZinitDirFails(t *testing.T) {
	root := project(t, map[string]string{
		"build.conf":                  "",
		"zinit/rfs-modules.yaml":      "exec: sh /etc/zinit/init/modules.sh\n",
		"zinit/init/modules.sh":       "#!/bin/sh\n",
		"zinit/init/firmware.sh":      "#!/bin/sh\n",
		"zinit/rfs-firmware.yaml":     "exec: sh /etc/zinit/init/firmware.sh\n",
		"zinit/udev-trigger.yaml":     "exec: sh /etc/zinit/init/udev.sh\n",
		"zinit/init/udev.sh":          "#!/bin/sh\n",
		"zinit/network.yaml":          "exec: true\n",
		"zinit/getty.yaml":            "exec: true\n",
		"zinit/init/unused-script.sh": "#!/bin/sh\n",
	})
	_, err := Load(Options{Root: root, Environ: []string{}})
	for _, want := range []string{
		"config/zinit/ holds 6 entries, which are not read",
		"now live in zinit/ at the project root",
		"Move yours there and remove config/zinit/",
		"init/rfs.sh",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}

	// An empty leftover folder holds nothing to lose.
	empty := project(t, map[string]string{"build.conf": ""})
	if err := os.Mkdir(filepath.Join(empty, "config", "zinit"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Options{Root: empty, Environ: []string{}}); err != nil {
		t.Errorf("empty config/zinit/: %v", err)
	}
}
