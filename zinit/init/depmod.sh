# depmod.sh: make sure modules.dep matches the modules shipped for the running kernel.
. /etc/zinit/init/lib.sh

if ! command -v depmod >/dev/null 2>&1; then
	log "depmod is not installed; keeping the shipped module index"
	exit 0
fi
kver=$(uname -r)
if [ ! -d "/lib/modules/$kver" ]; then
	log "no /lib/modules/$kver; nothing to index"
	exit 0
fi
# -A: only rebuild when a module is newer than the index shipped in the image.
depmod -A "$kver" || log "depmod -A $kver failed; keeping the shipped module index"
exit 0
