# udevd.sh: run udevd in the foreground under zinit's supervision.
. /etc/zinit/init/lib.sh

udevd=$(find_cmd udevd /sbin/udevd /usr/sbin/udevd /lib/systemd/systemd-udevd /usr/lib/systemd/systemd-udevd) ||
	idle "udevd is not installed"

# /init may have started a udevd for early boot; hand over to this supervised
# one, since a second udevd cannot bind the control socket and would exit.
if udevadm control --exit 2>/dev/null; then
	i=0
	while pidof udevd systemd-udevd >/dev/null 2>&1 && [ "$i" -lt 10 ]; do
		sleep 1
		i=$((i + 1))
	done
	log "took over from the early-boot udevd"
fi

exec "$udevd"
