package kernel

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// A Need is a kernel option a program of the image's runtime (/init, zinit,
// the unit scripts and what they run) cannot work without.
type Need struct {
	// Option is the CONFIG_ symbol.
	Option string
	// Module is the option's module name when it may be built as a module
	// (=m): then it is met only when the module is loaded at boot
	// (modules.conf), before the program runs. Empty: it must be built in.
	Module string
	// Why says what breaks without it.
	Why string
}

// RuntimeNeeds maps each program the image runs at boot to the kernel
// options it needs. The programs are those /init and the zinit unit scripts
// call (a test derives them from config/init and zinit/init/*.sh and fails
// on one that is neither here nor in BasePrograms); a program listed here
// that an image lacks costs nothing but an option in the kernel config.
var RuntimeNeeds = map[string][]Need{
	"init": { // config/init as PID 1
		{Option: "CONFIG_BLK_DEV_INITRD", Why: "the image is an initramfs"},
		{Option: "CONFIG_BINFMT_ELF", Why: "every program is an ELF executable"},
		{Option: "CONFIG_BINFMT_SCRIPT", Why: "/init and the unit scripts are #! scripts run directly"},
		{Option: "CONFIG_PROC_FS", Why: "/proc: /proc/cmdline, /proc/mounts, /proc/modules"},
		{Option: "CONFIG_SYSFS", Why: "/sys: devices and modules"},
		{Option: "CONFIG_DEVTMPFS", Why: "/dev: the device nodes"},
		{Option: "CONFIG_UNIX98_PTYS", Why: "/dev/pts: terminals for getty and ssh sessions"},
		{Option: "CONFIG_TMPFS", Why: "/run, /dev/shm, and / itself on a tmpfs (containers pivot_root out of it)"},
		{Option: "CONFIG_SHMEM", Why: "tmpfs with a size limit (without it tmpfs is ramfs: no limit, no swap)"},
	},
	"switch_root": {
		{Option: "CONFIG_TMPFS", Why: "/init moves / onto a tmpfs"},
	},
	"zinit": {
		{Option: "CONFIG_UNIX", Why: `its control socket (without it zinit aborts: "failed to create UnixStream: Address family not supported")`},
		{Option: "CONFIG_EPOLL", Why: "tokio's event loop"},
		{Option: "CONFIG_EVENTFD", Why: "tokio's event loop wake-ups"},
		{Option: "CONFIG_FUTEX", Why: "threads"},
	},
	"rfs": { // the flist mounter of the rfs-modules and rfs-firmware units
		{Option: "CONFIG_FUSE_FS", Module: "fuse", Why: "flists are FUSE mounts"},
		{Option: "CONFIG_INET", Why: "blobs come from an HTTP or S3 store"},
		{Option: "CONFIG_EPOLL", Why: "the Go runtime's network poller"},
		{Option: "CONFIG_FUTEX", Why: "threads"},
	},
	"udhcpc": { // DHCP of the network unit
		{Option: "CONFIG_INET", Why: "IPv4"},
		{Option: "CONFIG_PACKET", Module: "af_packet", Why: "DHCP discovery goes out on a raw packet socket before the interface has an address"},
	},
	"ip":    {{Option: "CONFIG_INET", Why: "addresses and routes (rtnetlink)"}},
	"curl":  {{Option: "CONFIG_INET", Why: "FLISTS_BASE_URL downloads"}},
	"wget":  {{Option: "CONFIG_INET", Why: "FLISTS_BASE_URL downloads"}},
	"sshd":  {{Option: "CONFIG_INET", Why: "TCP"}, {Option: "CONFIG_UNIX98_PTYS", Why: "session terminals"}},
	"udevd": {{Option: "CONFIG_UNIX", Why: "its control socket"}, {Option: "CONFIG_INOTIFY_USER", Why: "watching rules and devices"}, {Option: "CONFIG_SIGNALFD", Why: "its event loop"}, {Option: "CONFIG_EPOLL", Why: "its event loop"}},
	"udevadm": {
		{Option: "CONFIG_UNIX", Why: "udevd's control socket"},
	},
	"modprobe": {{Option: "CONFIG_MODULES", Why: "loading modules"}},
	"depmod":   {{Option: "CONFIG_MODULES", Why: "the module index"}},
	"unshare": { // containers, and the self-test's pivot_root in a new mount namespace
		{Option: "CONFIG_NAMESPACES", Why: "namespaces other than the mount namespace (which needs no option)"},
		{Option: "CONFIG_UTS_NS", Why: "container hostnames"},
		{Option: "CONFIG_IPC_NS", Why: "container IPC"},
		{Option: "CONFIG_PID_NS", Why: "container PIDs"},
		{Option: "CONFIG_NET_NS", Why: "container networks"},
	},
}

// BasePrograms need nothing beyond what any Linux userland has (a TTY,
// pipes, signals): busybox applets and shell helpers the units run.
var BasePrograms = []string{
	"awk", "cat", "chmod", "cmp", "cp", "cut", "date", "df", "dirname", "du", "find", "getty", "grep",
	"haveged", "head", "kill", "ln", "ls", "mdev", "mkdir", "mktemp", "mountpoint", "mv", "pidof", "pivot_root",
	"readlink", "reboot", "rm", "rngd", "sed", "setsid", "sh", "sha256sum", "sleep", "sort", "ssh-keygen", "stat",
	"stty", "sync", "tail", "timeout", "touch", "tr", "true", "false", "uname", "wc", "cttyhack", "env", "printf", "xargs",
	// mount's filesystem types are the "init" needs.
	"mount", "umount",
}

// Unmet is a Need the kernel config does not meet.
type Unmet struct {
	Need
	// Programs are the programs that need it.
	Programs []string
	// Got is the option's value ("n" when unset).
	Got string
}

func (u Unmet) String() string {
	s := fmt.Sprintf("%s=%s", u.Option, u.Got)
	if u.Got == "m" {
		s += fmt.Sprintf(" (module %s is not loaded at boot: add it to modules.conf or build it in)", u.Module)
	}
	return fmt.Sprintf("%s: needed by %s: %s", s, strings.Join(u.Programs, ", "), u.Why)
}

// CheckRuntime returns the RuntimeNeeds cfg does not meet, one per option,
// sorted by option. bootModules are the modules loaded at boot (the
// modules.conf names, '-' and '_' alike): an option built as a module is met
// only when its module is among them.
func CheckRuntime(cfg *Config, bootModules []string) []Unmet {
	loaded := map[string]bool{}
	for _, m := range bootModules {
		loaded[strings.ReplaceAll(m, "-", "_")] = true
	}
	byOption := map[string]*Unmet{}
	programs := slices.Sorted(maps.Keys(RuntimeNeeds))
	for _, program := range programs {
		for _, n := range RuntimeNeeds[program] {
			got, _ := cfg.Get(n.Option)
			if got == "y" || got == "m" && n.Module != "" && loaded[n.Module] {
				continue
			}
			u := byOption[n.Option]
			if u == nil {
				u = &Unmet{Need: n, Got: got}
				byOption[n.Option] = u
			}
			u.Programs = append(u.Programs, program)
		}
	}
	out := make([]Unmet, 0, len(byOption))
	for _, u := range byOption {
		slices.Sort(u.Programs)
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b Unmet) int { return strings.Compare(a.Option, b.Option) })
	return out
}
