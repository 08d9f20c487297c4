# modules-stage2.sh: modprobe each module of /etc/zero-os/modules-stage2.list (one per line, dependencies first).
. /etc/zinit/init/lib.sh

list=/etc/zero-os/modules-stage2.list
if [ ! -r "$list" ]; then
	log "$list not found; nothing to load"
	exit 0
fi
if ! command -v modprobe >/dev/null 2>&1; then
	log "modprobe is not installed; cannot load $list"
	exit 0
fi
loaded=0
failed=0
while read -r mod _; do
	case $mod in
	'' | '#'*) continue ;;
	esac
	if modprobe "$mod"; then
		loaded=$((loaded + 1))
	else
		failed=$((failed + 1))
		log "modprobe $mod failed"
	fi
done <"$list"
log "stage 2: $loaded modules loaded, $failed failed"
# A missing module must not block the units after this one.
exit 0
