# udev-rfs.sh: after the flists are mounted, let the modules and firmware
# that only they carry reach the devices that need them.
. /etc/zinit/init/lib.sh

version=$(cat /etc/zero-os/kernel-version 2>/dev/null)
# The modules flist ships the index depmod made at build time for the full
# set. Running depmod on the lazily fetched mount would download every module,
# so only run it when the index is missing.
if [ -n "$version" ] && [ ! -f "/lib/modules/$version/modules.dep" ] && command -v depmod >/dev/null 2>&1; then
	log "no modules.dep in the modules flist; running depmod -a $version"
	depmod -a "$version" || log "depmod failed"
fi
if command -v udevadm >/dev/null 2>&1; then
	udevadm control --reload || log "udevadm control --reload failed"
	udevadm trigger --action=add || log "udevadm trigger failed"
	udevadm settle || log "udevadm settle timed out"
elif command -v mdev >/dev/null 2>&1; then
	mdev -s || log "mdev -s failed"
fi
# A failed oneshot would block its dependents forever: always succeed.
exit 0
