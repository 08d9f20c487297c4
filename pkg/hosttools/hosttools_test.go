package hosttools

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestCheckNamesEveryMissingToolAndPackage(t *testing.T) {
	present := map[string]bool{"git": true, "make": true}
	look := func(name string) (string, error) {
		if present[name] {
			return "/usr/bin/" + name, nil
		}
		return "", exec.ErrNotFound
	}
	tools := append(Named("make", "cc", "flex", "bison", "bc", "perl", "depmod"), ForBuild("cargo-musl")...)
	tools = append(tools, Named("git")...)
	err := check(tools, look)
	if !errors.Is(err, ErrMissing) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"flex (Debian: apt-get install flex; Alpine: apk add flex)", "cc (Debian: apt-get install gcc; Alpine: apk add build-base)",
		"depmod (Debian: apt-get install kmod", "cargo (Debian"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "  git ") || strings.Contains(msg, "  make ") {
		t.Errorf("present tools reported:\n%s", msg)
	}
	if strings.Count(msg, "  cc (") != 1 {
		t.Errorf("cc reported more than once:\n%s", msg)
	}
	if err := check(Named("git"), look); err != nil {
		t.Errorf("all present: %v", err)
	}
}

func TestCheckOnThisHost(t *testing.T) {
	// sh exists on every host the build runs on; a made-up tool does not.
	if err := Check(ForBuild("script")); err != nil {
		t.Fatal(err)
	}
	err := Check([]Tool{{Name: "zosbuilder-no-such-tool", Debian: "nothing", Alpine: "nothing"}})
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "zosbuilder-no-such-tool") {
		t.Errorf("err = %v", err)
	}
}

func TestEveryToolIsKnown(t *testing.T) {
	lists := [][]Tool{ForRuntime("podman"), ForRuntime("docker")}
	for _, k := range []string{"cargo-musl", "go", "make", "script"} {
		lists = append(lists, ForBuild(k))
	}
	for name := range known() {
		lists = append(lists, Named(name))
	}
	for _, l := range lists {
		for _, tool := range l {
			if tool.Name == "" || tool.Debian == "" || tool.Alpine == "" {
				t.Errorf("incomplete tool %+v", tool)
			}
		}
	}
	if got := Named("zosbuilder-unknown"); got[0].Name != "zosbuilder-unknown" || got[0].Debian != "" {
		t.Errorf("Named of an unknown tool = %+v", got)
	}
}
