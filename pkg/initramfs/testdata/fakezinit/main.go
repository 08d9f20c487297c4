// Command fakezinit is a TEST FIXTURE, not zinit. The initramfs boot test
// installs it as /sbin/zinit: /init execs it as PID 1, and it prints what it
// finds (the units in /etc/zinit, the mounts, directories and modules /init
// prepared) for the test to check, prints a marker and reboots, which ends
// the QEMU started with -no-reboot.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
)

// Marker is printed last; the boot test waits for it.
const Marker = "FAKEZINIT-DONE"

type unit struct {
	Exec    string   `yaml:"exec"`
	After   []string `yaml:"after"`
	Oneshot bool     `yaml:"oneshot"`
}

func say(format string, args ...any) { fmt.Printf("fakezinit: "+format+"\n", args...) }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		fmt.Println("fakezinit (test fixture)")
		return
	}
	say("pid %d args %q", os.Getpid(), os.Args[1:])
	units()
	mounts()
	for _, d := range []string{"/home", "/tmp"} {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			say("dir %s ok", d)
		} else {
			say("dir %s missing", d)
		}
	}
	modules()
	var st unix.Stat_t
	if err := unix.Stat("/dev/console", &st); err == nil {
		say("/dev/console %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	say("%s", Marker)
	if os.Getpid() != 1 {
		return // never reboot a machine this was started on by mistake
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		say("reboot: %v", err)
	}
	select {} // PID 1 must not exit
}

func units() {
	files, _ := filepath.Glob("/etc/zinit/*.yaml")
	say("%d units in /etc/zinit", len(files))
	for _, f := range files {
		var u unit
		data, err := os.ReadFile(f)
		if err == nil {
			err = yaml.Unmarshal(data, &u)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if err != nil {
			say("unit %s: %v", name, err)
			continue
		}
		say("unit %s exec=%q after=%v oneshot=%v", name, u.Exec, u.After, u.Oneshot)
	}
}

func mounts() {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		say("no /proc/mounts: %v", err)
		return
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 3 {
			say("mount %s %s", fields[1], fields[2])
		}
	}
}

func modules() {
	data, err := os.ReadFile("/etc/zero-os/modules-stage1.list")
	if err != nil {
		say("no stage-1 list: %v", err)
		return
	}
	for _, name := range strings.Fields(string(data)) {
		if _, err := os.Stat("/sys/module/" + name); err == nil {
			say("module %s loaded", name)
		} else {
			say("module %s not loaded", name)
		}
	}
}
