# rfs.sh modules|firmware [check]: mount the modules or firmware flist
# read-only over its directory with `rfs mount`, in the foreground so zinit
# supervises it. `check` is the unit's test: it succeeds once the mount is
# up (or once the script has given up and idles, so udev-rfs is not blocked).
#
# The manifest comes from /etc/rfs (embedded at build time) unless
# FLISTS_BASE_URL (kernel command line or /etc/environment) names an HTTP(S)
# folder to fetch it from.
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

if [ "$2" = check ]; then
	[ -e "$idle_marker" ] && exit 0
	awk -v t="$target" '$2 == t && $3 ~ /^fuse/ { found = 1 } END { exit !found }' /proc/mounts
	exit
fi

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
exec "$rfs" mount -m "$manifest" -c "/var/cache/rfs/$kind" "$target"
