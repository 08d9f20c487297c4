# udev.sh: coldplug. Replay the kernel's add events for devices that appeared before udevd ran.
. /etc/zinit/init/lib.sh

# Always exit 0: a failed oneshot would block every unit after it forever.
if ! command -v udevadm >/dev/null 2>&1; then
	log "udevadm is not installed; skipping coldplug"
	exit 0
fi
i=0
while [ ! -S /run/udev/control ] && [ "$i" -lt 20 ]; do
	sleep 1
	i=$((i + 1))
done
if [ ! -S /run/udev/control ]; then
	log "udevd is not running; skipping coldplug"
	exit 0
fi
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add
udevadm settle --timeout=60 || log "udevadm settle timed out; continuing"
exit 0
