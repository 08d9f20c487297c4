#!/bin/sh
# network.sh: DHCP on every ethernet interface with busybox udhcpc and ip.
# zinit runs it without arguments; udhcpc runs it again as its event script
# (-s) with the event name as $1 and the lease in the environment.
. /etc/zinit/init/lib.sh

self=/etc/zinit/init/network.sh

# on_lease configures $interface from udhcpc's variables: ip, mask, router,
# dns, domain, serverid, and records the lease in /run/udhcpc.$interface.lease
# (KEY=VALUE lines), which also tells the main loop a lease came.
# shellcheck disable=SC2154 # udhcpc sets them in the environment
on_lease() {
	# A renewal of the same lease must not flap the address.
	if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/${mask:-24} "; then
		ip -4 addr flush dev "$interface"
		ip -4 addr add "$ip/${mask:-24}" dev "$interface"
	fi
	metric=$((100 + $(cat "/sys/class/net/$interface/ifindex" 2>/dev/null || echo 0)))
	for r in $router; do
		ip -4 route add default via "$r" dev "$interface" metric "$metric" 2>/dev/null
		break
	done
	if [ -n "$dns" ]; then
		{
			[ -n "$domain" ] && echo "search $domain"
			for d in $dns; do
				echo "nameserver $d"
			done
		} >/etc/resolv.conf.tmp && mv /etc/resolv.conf.tmp /etc/resolv.conf
	fi
	printf 'ip=%s\nmask=%s\nrouter=%s\nserver=%s\n' "$ip" "${mask:-24}" "$router" "$serverid" >"/run/udhcpc.$interface.lease.tmp" &&
		mv "/run/udhcpc.$interface.lease.tmp" "/run/udhcpc.$interface.lease"
	log "$interface: $ip/${mask:-24} from ${serverid:-?} via ${router:-no router}"
}

dhcp_event() {
	case $1 in
	deconfig)
		rm -f "/run/udhcpc.$interface.lease"
		ip -4 addr flush dev "$interface"
		ip link set "$interface" up
		;;
	bound | renew) on_lease ;;
	leasefail | nak) log "$interface: no DHCP lease yet ($1)" ;;
	esac
}

# ethernet_interfaces prints the physical, wired interfaces (ARPHRD_ETHER with a device behind them).
ethernet_interfaces() {
	for d in /sys/class/net/*; do
		[ -e "$d/device" ] || continue
		[ "$(cat "$d/type" 2>/dev/null)" = 1 ] || continue
		[ -e "$d/wireless" ] || [ -e "$d/phy80211" ] && continue
		echo "${d##*/}"
	done
}

has_default_route() {
	[ -n "$(ip -4 route show default 2>/dev/null)" ]
}

# routerless_lease: a lease that names no router, an isolated network (QEMU's
# restricted user networking): there will be no route out to wait for.
routerless_lease() {
	for l in /run/udhcpc.*.lease; do
		[ -f "$l" ] && grep -q '^router=$' "$l" && return 0
	done
	return 1
}

if [ $# -gt 0 ]; then
	dhcp_event "$1"
	exit 0
fi

# Exit 0 when the tools are missing: a failed oneshot blocks its dependents forever.
if ! command -v ip >/dev/null 2>&1 || ! command -v udhcpc >/dev/null 2>&1; then
	log "ip or udhcpc is not installed; network not configured"
	exit 0
fi

# start_dhcp runs one udhcpc per ethernet interface that has none yet.
start_dhcp() {
	for i in $(ethernet_interfaces); do
		pidfile=/run/udhcpc.$i.pid
		if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			continue
		fi
		ip link set "$i" up
		# -b: go to the background after the first attempts and keep trying (and renewing).
		udhcpc -i "$i" -b -p "$pidfile" -s "$self" -t 5 -T 3
	done
}

ip link set lo up
start_dhcp
# Units after this one expect a working network: finish only once there is a
# route out (or a lease that says there is none), picking up interfaces whose
# driver loads late on the way.
waited=0
until has_default_route || routerless_lease; do
	sleep 1
	waited=$((waited + 1))
	if [ $((waited % 10)) -eq 0 ]; then
		start_dhcp
		log "no IPv4 default route yet after ${waited}s"
	fi
done
if has_default_route; then
	log "network is up: $(ip -4 route show default | head -n 1)"
else
	console "network is up without a route out: the DHCP server gave no router ($(cat /run/udhcpc.*.lease 2>/dev/null | tr '\n' ' '))"
fi
exit 0
