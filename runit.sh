#!/usr/bin/env bash
# runit.sh: boot a Zero-OS kernel (and optionally a separate initramfs) in a
# VM with its serial console on stdout, for people and for boot tests.
# Run ./runit.sh --help for the options and exit codes.
set -euo pipefail

prog=${0##*/}

usage() {
	cat <<EOF
Usage: $prog [options]

Boot a kernel in a VM with the serial console on stdout (and in a log file).

Options:
  --hypervisor qemu|ch   VM to use (default qemu). ch is cloud-hypervisor; it
                         needs a working KVM and is used only when installed.
  --kernel FILE          kernel to boot (default dist/vmlinuz.efi, which has
                         the initramfs embedded)
  --initrd FILE          separate initramfs (default: none)
  --memory SIZE          guest memory, e.g. 512M, 2G (default 2G)
  --cpus N               virtual CPUs (default 2)
  --disk N:SIZE          attach virtio disk N (a name: 1, data, ...) of SIZE
                         (e.g. 10G). The sparse raw image \$RUNIT_DISK_DIR/disk-N.img
                         (default dist/vm) is created when missing and kept
                         between runs. Repeat for more disks.
  --net user|restricted|none
                         user: QEMU user-mode NIC (virtio-net, NAT, no root
                         needed); restricted: the same NIC with no route out
                         of the host (DHCP and --store only); none: no NIC
                         (default user)
  --store DIR            serve the dir:// flist store DIR (e.g.
                         dist/flists/store) read-only to the guest at
                         http://10.0.2.100/, the route flists packed without
                         rfs.conf carry (LOCAL_STORE_ROUTE). Each guest
                         connection runs the host's busybox httpd on DIR;
                         nothing listens on the host. QEMU only.
  --append ARGS          extra kernel command line, after
                         "console=ttyS0,115200 panic=-1"
  --timeout SECONDS      stop the VM and fail after SECONDS (default: none;
                         600 with --expect)
  --expect TEXT          succeed as soon as TEXT appears on the console
  --log FILE             also write the console to FILE (default: a
                         temporary file, removed at exit)
  --accel auto|kvm|tcg   QEMU accelerator (default auto: KVM only when a quick
                         probe boot shows it really runs guests, else TCG)
  -h, --help             show this help

Interactive use (no --expect): the console is on this terminal; Ctrl-A x
quits QEMU, Ctrl-A c switches to the QEMU monitor. The guest's panic and
reboot both end the VM (panic=-1, -no-reboot).

Exit codes:
  0    TEXT seen (with --expect), or the VM ended normally (without)
  1    "Kernel panic" on the console
  2    bad usage
  3    missing hypervisor, kernel, initrd, or no KVM for cloud-hypervisor
  4    the VM ended without TEXT appearing (with --expect), or QEMU failed
  124  timeout

The VM never outlives this script: it is killed on exit, on Ctrl-C and on
SIGTERM, and (with util-linux setpriv) even when the script is SIGKILLed.

Environment:
  RUNIT_DISK_DIR             where --disk images live (default dist/vm)
  RUNIT_STORE_ADDR           guest address:port of --store (default 10.0.2.100:80)
  RUNIT_KVM_PROBE_TIMEOUT    seconds the KVM probe waits (default 8)
EOF
}

die() { # die CODE MESSAGE
	echo "$prog: $2" >&2
	exit "$1"
}
note() { echo "$prog: $*" >&2; }

hypervisor=qemu
kernel=dist/vmlinuz.efi
initrd=
memory=2G
cpus=2
disks=()
net=user
store=
append=
timeout=
expect=
log=
accel=auto

while (($#)); do
	opt=$1
	val=
	case $opt in
	-h | --help)
		usage
		exit 0
		;;
	--*=*)
		val=${opt#*=}
		opt=${opt%%=*}
		;;
	--*)
		(($# >= 2)) || die 2 "$opt needs a value (see --help)"
		val=$2
		shift
		;;
	*) die 2 "unexpected argument '$opt' (see --help)" ;;
	esac
	shift
	case $opt in
	--hypervisor) hypervisor=$val ;;
	--kernel) kernel=$val ;;
	--initrd) initrd=$val ;;
	--memory) memory=$val ;;
	--cpus) cpus=$val ;;
	--disk) disks+=("$val") ;;
	--net) net=$val ;;
	--store) store=$val ;;
	--append) append=$val ;;
	--timeout) timeout=$val ;;
	--expect) expect=$val ;;
	--log) log=$val ;;
	--accel) accel=$val ;;
	*) die 2 "unknown option $opt (see --help)" ;;
	esac
done

case $hypervisor in
qemu) ;;
ch | cloud-hypervisor) hypervisor=ch ;;
*) die 2 "--hypervisor $hypervisor: want qemu or ch" ;;
esac
[[ $memory =~ ^[0-9]+[KMGT]?$ ]] || die 2 "--memory $memory: want a size like 512M or 2G"
[[ $cpus =~ ^[1-9][0-9]*$ ]] || die 2 "--cpus $cpus: want a positive number"
[[ $net == user || $net == restricted || $net == none ]] || die 2 "--net $net: want user, restricted or none"
store_addr=${RUNIT_STORE_ADDR:-10.0.2.100:80}
if [[ -n $store ]]; then
	[[ $net != none ]] || die 2 "--store needs a NIC: --net user or restricted"
	[[ $hypervisor == qemu ]] || die 2 "--store needs QEMU's user networking"
	[[ -d $store ]] || die 3 "--store $store: not a directory"
	store=$(cd "$store" && pwd)
	# The path goes into a QEMU option (',' separates) and a command line.
	[[ $store != *[,\'\"]* ]] || die 2 "--store $store: the path must not contain , ' or \""
	[[ $store_addr =~ ^[0-9.]+:[0-9]+$ ]] || die 2 "RUNIT_STORE_ADDR $store_addr: want IP:PORT"
	command -v busybox >/dev/null || die 3 "busybox not found (--store serves with busybox httpd): apt-get install busybox-static"
fi
[[ $accel == auto || $accel == kvm || $accel == tcg ]] || die 2 "--accel $accel: want auto, kvm or tcg"
if [[ -z $timeout && -n $expect ]]; then
	timeout=600
fi
[[ -z $timeout || $timeout =~ ^[0-9]+$ ]] || die 2 "--timeout $timeout: want whole seconds"
for d in "${disks[@]}"; do
	[[ $d =~ ^[A-Za-z0-9_-]+:[0-9]+[KMGT]?$ ]] || die 2 "--disk $d: want NAME:SIZE, e.g. 1:10G"
done
[[ -f $kernel ]] || die 3 "kernel $kernel not found (build it with 'mage build' or pass --kernel)"
[[ -z $initrd || -f $initrd ]] || die 3 "initrd $initrd not found"

cmdline="console=ttyS0,115200 panic=-1${append:+ $append}"

# State the trap cleans up.
vm_pid=
tmp_files=()

# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [[ -n $vm_pid ]] && kill -0 "$vm_pid" 2>/dev/null; then
		kill -TERM "$vm_pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$vm_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$vm_pid" 2>/dev/null || true
	fi
	[[ -z $vm_pid ]] || wait "$vm_pid" 2>/dev/null || true
	((${#tmp_files[@]} == 0)) || rm -f "${tmp_files[@]}"
	# QEMU's stdio console leaves a terminal in raw mode when killed.
	[[ ! -t 0 ]] || stty sane 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# spawn CMD...: start the VM in the background, keeping this script's stdin
# (a background job would otherwise read /dev/null), and make the kernel
# kill it if this script dies without running its trap (SIGKILL).
spawn() {
	local guard=()
	if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then
		guard=(setpriv --pdeathsig KILL --)
	fi
	"${guard[@]}" "$@" <&0 &
	vm_pid=$!
}

# kvm_works: true when KVM runs guests here. /dev/kvm existing is not
# enough (nested setups where guests hang or QEMU aborts), so boot the
# kernel briefly and wait for its first console line.
kvm_works() {
	[[ -r /dev/kvm && -w /dev/kvm ]] || return 1
	local out pid ok=1 limit=${RUNIT_KVM_PROBE_TIMEOUT:-8}
	out=$(mktemp)
	tmp_files+=("$out")
	qemu-system-x86_64 -accel kvm -cpu host -m 256 -nodefaults -display none -no-reboot \
		-serial "file:$out" -kernel "$kernel" -append "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1" \
		</dev/null >/dev/null 2>&1 &
	pid=$!
	# The group's stderr also silences bash's "Aborted" job notice: QEMU
	# aborts at once where KVM cannot set the host CPU's MSRs.
	{
		for _ in $(seq $((limit * 10))); do
			if grep -q "Linux version" "$out"; then
				ok=0
				break
			fi
			kill -0 "$pid" || break
			sleep 0.1
		done
		kill -KILL "$pid" || true
		wait "$pid" || true
	} 2>/dev/null
	return "$ok"
}

# make_disk NAME:SIZE: print the image path, creating a sparse file first.
make_disk() {
	local name=${1%%:*} size=${1#*:} dir=${RUNIT_DISK_DIR:-dist/vm} img
	img=$dir/disk-$name.img
	mkdir -p "$dir"
	if [[ ! -e $img ]]; then
		if command -v qemu-img >/dev/null; then
			qemu-img create -q -f raw "$img" "$size" >&2
		else
			truncate -s "$size" "$img"
		fi
		note "created sparse disk $img ($size)"
	fi
	echo "$img"
}

log_hint=" and in $log"
if [[ -z $log ]]; then
	log=$(mktemp)
	tmp_files+=("$log")
	log_hint=
else
	mkdir -p "$(dirname "$log")"
fi
: >"$log"

if [[ $hypervisor == qemu ]]; then
	command -v qemu-system-x86_64 >/dev/null ||
		die 3 "qemu-system-x86_64 not found: apt-get install qemu-system-x86"
	if [[ $accel == auto ]]; then
		accel=tcg
		if kvm_works; then accel=kvm; fi
	fi
	cpu=max
	[[ $accel == tcg ]] || cpu=host
	# shellcheck disable=SC2054 # commas belong to QEMU option values
	args=(-name zos-runit -machine q35 -accel "$accel" -cpu "$cpu" -m "$memory" -smp "$cpus"
		-nodefaults -display none -no-reboot
		-chardev "stdio,id=con,mux=on,signal=off,logfile=$log"
		-serial chardev:con -mon chardev=con,mode=readline
		-device virtio-rng-pci
		-kernel "$kernel" -append "$cmdline")
	[[ -z $initrd ]] || args+=(-initrd "$initrd")
	if [[ $net != none ]]; then
		nic=user,model=virtio-net-pci
		[[ $net != restricted ]] || nic+=,restrict=on
		if [[ -n $store ]]; then
			# One busybox httpd in inetd mode per guest connection, on the
			# connection's socket: nothing listens on the host.
			nic+=",guestfwd=tcp:$store_addr-cmd:$(command -v busybox) httpd -i -c /dev/null -h '$store'"
		fi
		args+=(-nic "$nic")
	fi
	i=0
	for d in "${disks[@]}"; do
		img=$(make_disk "$d")
		args+=(-drive "file=$img,format=raw,if=none,id=disk$i"
			-device "virtio-blk-pci,drive=disk$i,serial=zos-${d%%:*}")
		i=$((i + 1))
	done
	note "qemu ($accel), kernel $kernel${initrd:+, initrd $initrd}, $memory, $cpus cpus${store:+, store $store at http://$store_addr/}, log $log"
	spawn qemu-system-x86_64 "${args[@]}"
else
	command -v cloud-hypervisor >/dev/null ||
		die 3 "cloud-hypervisor not found in PATH (it is not packaged in Debian 12; install a release binary, or use --hypervisor qemu)"
	[[ $accel != tcg ]] || die 2 "--accel tcg: cloud-hypervisor runs only on KVM"
	if [[ $accel == auto ]] && ! command -v qemu-system-x86_64 >/dev/null; then
		[[ -w /dev/kvm ]] || die 3 "cloud-hypervisor needs /dev/kvm"
	elif [[ $accel == auto ]] && ! kvm_works; then
		die 3 "cloud-hypervisor needs a working KVM and the KVM probe failed here; use --hypervisor qemu"
	fi
	args=(--kernel "$kernel" --cmdline "$cmdline" --cpus "boot=$cpus" --memory "size=$memory"
		--serial tty --console off --rng)
	[[ -z $initrd ]] || args+=(--initramfs "$initrd")
	[[ $net == none ]] || note "--net $net is QEMU-only; cloud-hypervisor runs without a NIC (it needs a tap device)"
	for d in "${disks[@]}"; do
		args+=(--disk "path=$(make_disk "$d")")
	done
	note "cloud-hypervisor, kernel $kernel${initrd:+, initrd $initrd}, $memory, $cpus cpus, log $log"
	spawn cloud-hypervisor "${args[@]}" > >(tee -a "$log")
fi

# Watch the console until TEXT, a panic, the VM's end or the timeout.
seen() { grep -aqF -- "$1" "$log"; }
result=
start=$SECONDS
while kill -0 "$vm_pid" 2>/dev/null; do
	if [[ -n $expect ]] && seen "$expect"; then
		result=expect
		break
	fi
	if seen "Kernel panic"; then
		result=panic
		break
	fi
	if [[ -n $timeout ]] && ((SECONDS - start >= timeout)); then
		result=timeout
		break
	fi
	sleep 0.2
done

vm_status=0
if [[ -z $result ]]; then
	# The VM ended by itself: its last words may hold TEXT or a panic.
	wait "$vm_pid" || vm_status=$?
	vm_pid=
	if [[ -n $expect ]] && seen "$expect"; then
		result=expect
	elif seen "Kernel panic"; then
		result=panic
	fi
fi

case $result in
expect)
	note "found '$expect' after $((SECONDS - start)) s"
	exit 0
	;;
panic)
	note "kernel panic (see the console above$log_hint)"
	exit 1
	;;
timeout)
	note "timeout after $timeout s${expect:+ waiting for \"$expect\"}"
	exit 124
	;;
esac
if [[ -n $expect ]]; then
	note "the VM ended (status $vm_status) without printing '$expect'"
	exit 4
fi
((vm_status == 0)) || die 4 "the VM exited with status $vm_status"
exit 0
