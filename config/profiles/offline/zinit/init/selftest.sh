# selftest.sh: the offline profile's boot self-test (its unit is in
# config/profiles/offline/zinit/, so no production image has it). It runs
# once udev-rfs is done, checks what the runtime did and prints, on the
# console, one line per check and lines of measurements:
#   SELFTEST PASS <check>: <detail>
#   SELFTEST FAIL <check>: <why>
#   SELFTEST INFO <what>: <figure>
#   SELFTEST DONE: <n> passed, <m> failed[: <failed checks>]
# then reboots through zinit (a QEMU started with -no-reboot exits).
#
# Environment (the kernel command line's KEY=VALUE words reach it through
# /init and zinit):
#   SELFTEST_MODULE    a module only the modules flist carries (default dummy)
#   SELFTEST_FIRMWARE  a file under /lib/firmware only the firmware flist
#                      carries (default the fixture of mage fixtures:offline)
#   SELFTEST_REBOOT=0  keep the machine up afterwards
. /etc/zinit/init/lib.sh

flist_module=${SELFTEST_MODULE:-dummy}
flist_firmware=${SELFTEST_FIRMWARE:-fixture-flist/flist-only.bin}
version=$(cat /etc/zero-os/kernel-version 2>/dev/null)
modules=/lib/modules/$version

passed=0
failed=
say() { echo "SELFTEST $*" >/dev/console; }
pass() {
	passed=$((passed + 1))
	say "PASS $1: $2"
}
fail() {
	failed="$failed $1"
	say "FAIL $1: $2"
}
# uptime_ms: time since boot, in milliseconds (10 ms steps).
uptime_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
fstype() { awk -v t="$1" '$2 == t { f = $3 } END { print f }' /proc/mounts; }

# pid1: the real zinit is PID 1 (not a stand-in, not /init).
check_pid1() {
	exe=$(readlink /proc/1/exe)
	cmdline=$(tr '\0' ' ' </proc/1/cmdline)
	ver=$(/sbin/zinit --version 2>&1)
	case $exe:$ver in
	/sbin/zinit:"zinit v"*) pass pid1 "$cmdline($ver)" ;;
	*) fail pid1 "PID 1 is $exe ($cmdline), /sbin/zinit --version says: $ver" ;;
	esac
}

# units_state: empty when every unit but this one is where it must be:
# a oneshot exited successfully (Success), a daemon is Running; else what
# is not.
units_state() {
	list=$(zinit list 2>&1) || {
		echo "zinit list failed: $list"
		return
	}
	for f in /etc/zinit/*.yaml; do
		name=${f##*/}
		name=${name%.yaml}
		[ "$name" = selftest ] && continue
		want=Running
		grep -q '^oneshot: *true' "$f" && want=Success
		state=$(echo "$list" | sed -n "s/^$name: //p")
		[ "$state" = "$want" ] || printf ' %s=%s (want %s)' "$name" "${state:-not listed}" "$want"
	done
}

# units: every shipped oneshot Success, every daemon Running; daemons
# outside this unit's `after` chain get a minute to come up.
check_units() {
	i=0
	while bad=$(units_state) && [ -n "$bad" ] && [ "$i" -lt 60 ]; do
		sleep 1
		i=$((i + 1))
	done
	if [ -n "$bad" ]; then
		fail units "$bad"
		return
	fi
	up=$(uptime_ms)
	oneshots=$(grep -l '^oneshot: *true' /etc/zinit/*.yaml | grep -vc /selftest.yaml)
	total=$(find /etc/zinit -maxdepth 1 -name '*.yaml' ! -name selftest.yaml | wc -l)
	pass units "$oneshots oneshots Success, $((total - oneshots)) daemons Running"
	say "INFO all units up: $up ms after boot"
	zinit list 2>&1 | while IFS= read -r line; do say "INFO zinit list: $line"; done
}

# dhcp: the network unit got a lease (network.sh records it in
# /run/udhcpc.IFACE.lease) and the interface has its address.
check_dhcp() {
	for l in /run/udhcpc.*.lease; do
		[ -f "$l" ] || continue
		dev=${l#/run/udhcpc.}
		dev=${dev%.lease}
		lease() { sed -n "s/^$1=//p" "$l"; }
		addr=$(ip -4 addr show dev "$dev" 2>/dev/null | awk '$1 == "inet" { print $2; exit }')
		if [ -n "$addr" ] && [ "$addr" = "$(lease ip)/$(lease mask)" ]; then
			router=$(lease router)
			pass dhcp "$dev $addr from $(lease server)${router:+ via $router}"
			return
		fi
	done
	fail dhcp "no DHCP lease on an interface: $(ip -4 addr 2>&1 | awk '$1 == "inet" { print $NF, $2 }' | tr '\n' ' ')"
}

# flists: the modules and firmware flists are FUSE mounts, and the modules
# one is the full set (its index has a module the image does not).
check_flists() {
	bad=
	for m in "$modules" /lib/firmware; do
		t=$(fstype "$m")
		case $t in
		fuse*) ;;
		*) bad="$bad $m is ${t:-not a mount point};" ;;
		esac
	done
	if [ -z "$bad" ] && ! grep -q "/$flist_module.ko:" "$modules/modules.dep"; then
		bad="$modules/modules.dep does not list $flist_module"
	fi
	if [ -n "$bad" ]; then
		fail flists "${bad# }"
	else
		pass flists "$modules and /lib/firmware are $(fstype "$modules") and $(fstype /lib/firmware) mounts"
	fi
}

# modprobe: a module only the flist carries loads from it. Before, one
# other module file is read cold through the flist: its first-read latency.
check_modprobe() {
	cold=$(awk -F: -v m="/$flist_module.ko" 'index($1, m) == 0 { print $1; exit }' "$modules/modules.dep" 2>/dev/null)
	if [ -n "$cold" ] && [ -f "$modules/$cold" ]; then
		t0=$(uptime_ms)
		cat "$modules/$cold" >/dev/null
		t1=$(uptime_ms)
		say "INFO first read through the modules flist: $cold, $(stat -c %s "$modules/$cold") bytes in $((t1 - t0)) ms"
	fi
	if grep -q "^$flist_module " /proc/modules; then
		fail modprobe "$flist_module was loaded before the test"
		return
	fi
	t0=$(uptime_ms)
	out=$(modprobe "$flist_module" 2>&1)
	rc=$?
	t1=$(uptime_ms)
	if [ "$rc" -eq 0 ] && grep -q "^$flist_module " /proc/modules; then
		pass modprobe "$flist_module loaded from the flist in $((t1 - t0)) ms"
	else
		fail modprobe "modprobe $flist_module: exit $rc: $out"
	fi
}

# firmware: a file only the firmware flist carries reads back; the boot
# test compares its sha256 with the build host's copy.
check_firmware() {
	f=/lib/firmware/$flist_firmware
	t0=$(uptime_ms)
	sum=$(sha256sum "$f" 2>&1)
	rc=$?
	t1=$(uptime_ms)
	if [ "$rc" -eq 0 ]; then
		pass firmware "$flist_firmware sha256 ${sum%% *} ($(stat -c %s "$f") bytes in $((t1 - t0)) ms)"
	else
		fail firmware "$f: $sum"
	fi
}

# rootfs: / is a tmpfs, and pivot_root out of it works in a new mount
# namespace, as a container runtime does it.
check_rootfs() {
	t=$(fstype /)
	if [ "$t" != tmpfs ]; then
		fail rootfs "/ is $t, not tmpfs"
		return
	fi
	# shellcheck disable=SC2016 # expanded by the inner shell
	out=$(unshare -m sh -c 'd=$(mktemp -d) && mount -t tmpfs tmpfs "$d" && mkdir "$d/old" && cd "$d" && pivot_root . old && echo pivoted' 2>&1)
	if [ "$out" = pivoted ]; then
		pass rootfs "/ is tmpfs; pivot_root in a new mount namespace works"
	else
		fail rootfs "pivot_root in a new mount namespace: $out"
	fi
}

# The mounters' peak memory, now that modprobe and the firmware read went
# through them.
report_rfs_memory() {
	for pid in $(pidof rfs); do
		say "INFO rfs memory: $(tr '\0' ' ' <"/proc/$pid/cmdline")VmHWM $(awk '$1 == "VmHWM:" { print $2, $3 }' "/proc/$pid/status")"
	done
}

say "START $(uname -r)"
check_pid1
check_units
check_dhcp
check_flists
check_modprobe
check_firmware
check_rootfs
report_rfs_memory
set -- $failed
say "DONE: $passed passed, $# failed${failed:+:$failed}"
if [ "${SELFTEST_REBOOT:-1}" != 0 ]; then
	zinit reboot || console "zinit reboot failed"
fi
exit 0
