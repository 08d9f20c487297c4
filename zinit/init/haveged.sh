# haveged.sh: run an entropy daemon in the foreground: haveged, else rngd.
. /etc/zinit/init/lib.sh

if haveged=$(find_cmd haveged /usr/sbin/haveged /sbin/haveged); then
	exec "$haveged" -F -w 1024
fi
if rngd=$(find_cmd rngd /usr/sbin/rngd /sbin/rngd); then
	exec "$rngd" -f
fi
idle "neither haveged nor rngd is installed; the kernel's own entropy sources are used"
