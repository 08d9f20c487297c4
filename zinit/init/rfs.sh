# rfs.sh modules|firmware [check]: mount the modules or firmware flist
# read-only over its directory with `rfs mount`, which runs as long as this
# script does, so zinit supervises it. `check` is the unit's test: it
# succeeds once the mount is up and its store answers (or once the script
# has given up and idles, so udev-rfs is not blocked).
#
# The manifest comes from /etc/rfs (embedded at build time) unless
# FLISTS_BASE_URL (kernel command line or /etc/environment) names an HTTP(S)
# folder to fetch it from. Before the mount counts as up, one byte of one
# of its files (modules.dep for the modules) is read through it: a store
# that does not answer within RFS_STORE_TIMEOUT seconds (default 30),
# RFS_STORE_TRIES times (default 10), makes the script unmount, say so on
# the console and give up. These and RFS_FETCH_TRIES may be set on the
# kernel command line.
. /etc/zinit/init/lib.sh

kind=$1
version=$(cat /etc/zero-os/kernel-version 2>/dev/null)
case $kind in
modules)
	target=/lib/modules/$version
	name=modules-$version.fl
	;;
firmware)
	target=/lib/firmware
	# The build embeds firmware-latest.fl, or firmware-<FIRMWARE_TAG>.fl.
	name=firmware-latest.fl
	for f in /etc/rfs/firmware-*.fl; do
		[ -f "$f" ] && name=${f##*/}
	done
	;;
*)
	log "usage: rfs.sh modules|firmware [check]"
	exit 2
	;;
esac
idle_marker=/run/rfs-$kind.idle
ready_marker=/run/rfs-$kind.ready

mounted() {
	awk -v t="$target" '$2 == t && $3 ~ /^fuse/ { found = 1 } END { exit !found }' /proc/mounts
}

if [ "$2" = check ]; then
	# zinit runs the test every 2 s until it passes: failing is normal here.
	trap - EXIT
	[ -e "$idle_marker" ] && exit 0
	[ -e "$ready_marker" ] && mounted
	exit
fi
rm -f "$idle_marker" "$ready_marker"

# console MESSAGE: say it where a person at the machine sees it too.
console() {
	log "$*"
	echo "rfs-$kind: $*" >/dev/console 2>/dev/null
}

# give_up REASON: stay up without mounting (exiting would make zinit restart
# this every 2 s), and let `check` pass so the units after this one run.
give_up() {
	console "$* (not mounting $target)"
	: >"$idle_marker"
	idle "$*"
}

[ -n "$version" ] || give_up "no /etc/zero-os/kernel-version"
if [ "$kind" = modules ] && [ "$(uname -r)" != "$version" ]; then
	console "WARNING: the running kernel is $(uname -r) but this image was built for $version"
fi
rfs=$(find_cmd rfs /usr/bin/rfs /sbin/rfs) || give_up "rfs is not installed"

# base_url prints FLISTS_BASE_URL from the kernel command line, else from
# /etc/environment.
base_url() {
	for arg in $(cat /proc/cmdline 2>/dev/null); do
		case $arg in FLISTS_BASE_URL=*) echo "${arg#*=}"; return ;; esac
	done
	sed -n 's/^FLISTS_BASE_URL=//p' /etc/environment 2>/dev/null | tr -d '"' | tail -n1
}

# fetch URL FILE
fetch() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --max-time 60 -o "$2" "$1"
	else
		wget -q -T 60 -O "$2" "$1"
	fi
}

manifest=/etc/rfs/$name
base=$(base_url)
if [ -n "$base" ]; then
	mkdir -p /var/cache/rfs/manifests
	dst=/var/cache/rfs/manifests/$name
	tries=0
	until fetch "${base%/}/$name" "$dst.part" && mv "$dst.part" "$dst"; do
		tries=$((tries + 1))
		if [ $tries -ge "${RFS_FETCH_TRIES:-30}" ]; then
			console "giving up on ${base%/}/$name after $tries tries; using the embedded $manifest"
			break
		fi
		sleep 2
	done
	[ -f "$dst" ] && manifest=$dst
fi
[ -f "$manifest" ] || give_up "no manifest $name (in /etc/rfs or at FLISTS_BASE_URL)"

mkdir -p "$target" "/var/cache/rfs/$kind"
log "mounting $manifest on $target"
"$rfs" mount -m "$manifest" -c "/var/cache/rfs/$kind" "$target" &
pid=$!

# stop_mount: end the mounter (it may hang on a store request: 10 s, then
# SIGKILL) and make sure nothing is left mounted.
stop_mount() {
	kill "$pid" 2>/dev/null
	i=0
	while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 10 ]; do
		sleep 1
		i=$((i + 1))
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if mounted; then
		umount -l "$target" 2>/dev/null
	fi
}

waited=0
until mounted; do
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid"
		rc=$?
		console "rfs mount of $name exited with status $rc before $target was mounted"
		exit "$rc"
	fi
	waited=$((waited + 1))
	if [ "$waited" -ge 60 ]; then
		stop_mount
		console "rfs mount of $name did not mount $target within 60 s"
		exit 1
	fi
	sleep 1
done

# The mount only reads its manifest: prove the blobs come, from the store
# (or the local cache), before telling zinit it is up.
if [ "$kind" = modules ]; then
	probe=$target/modules.dep
else
	probe=$(find "$target" -type f 2>/dev/null | head -n 1)
fi
tries=0
while [ -n "$probe" ] && ! timeout -s KILL "${RFS_STORE_TIMEOUT:-30}" head -c 1 "$probe" >/dev/null 2>&1; do
	tries=$((tries + 1))
	if [ "$tries" -ge "${RFS_STORE_TRIES:-10}" ]; then
		stop_mount
		give_up "its store does not answer: reading ${probe#"$target"/} failed $tries times"
	fi
	log "reading ${probe#"$target"/} through the flist failed (try $tries); retrying"
	sleep 2
done
: >"$ready_marker"
log "$name mounted on $target"
wait "$pid"
rc=$?
rm -f "$ready_marker"
exit "$rc"
