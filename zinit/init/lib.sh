# lib.sh: helpers sourced by the other unit scripts; it is not a unit itself.

# zinit may have been started without PATH; the scripts must find sbin tools.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

log() {
	echo "${0##*/}: $*"
}

# console MESSAGE: log it and say it on the console too. zinit keeps a
# unit's output in its log ring (zinit log), which nobody sees at boot: a
# failure must be readable where a person at the machine looks.
console() {
	log "$*"
	echo "${0##*/}: $*" >/dev/console 2>/dev/null
}

# A unit script that fails says so on the console (a script that execs its
# daemon is that daemon from then on).
on_exit() {
	_rc=$?
	[ "$_rc" -eq 0 ] || console "exited with status $_rc"
}
trap on_exit EXIT

# idle keeps a service whose program is missing alive and quiet. Exiting
# instead would make zinit restart it every 2 s forever, and a spawn failure
# would block every unit that lists it in `after`.
idle() {
	log "$* (idling)"
	while :; do
		sleep 3600
	done
}

# find_cmd NAME [PATH...]: print the first executable of the given paths, or
# NAME's absolute path from PATH; fail when there is none.
find_cmd() {
	_name=$1
	shift
	for _p in "$@"; do
		if [ -x "$_p" ]; then
			echo "$_p"
			return 0
		fi
	done
	_p=$(command -v "$_name" 2>/dev/null) || return 1
	case $_p in
	/*) echo "$_p" ;;
	*) return 1 ;;
	esac
}
