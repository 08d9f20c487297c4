#!/usr/bin/env bash
# Compatibility shim: patch the store routes of an existing flist with the Go
# tools (rfs config -m FL store list|add|delete). Every change rewrites a
# copy of the flist and renames it over the original; listings show URLs with
# the password masked.
set -euo pipefail
source "$(dirname "$0")/../lib/mage.sh"

usage() {
	cat <<'USAGE'
Usage: scripts/rfs/patch-stores.sh FILE.fl [ACTION]

Actions (STORES is a comma-separated "[xx-yy=]URL" list, ranges in lowercase
hex as rfs's -s takes them; the word rfs.conf stands for the read-only route
of config/rfs.conf, so no secret has to be typed):
  (none)          set the route from config/rfs.conf, as the original did
                  (mage rfs:storesSet FL rfs.conf)
  list            show the routes (mage rfs:stores FL)
  set STORES      replace every route, e.g. after rotating the read
                  credentials in config/rfs.conf: set rfs.conf
  add STORES      add routes, e.g. an HTTPS row: add https://host/blobs
  delete STORE    remove the routes to STORE (as written, or as listed)
USAGE
}

case "${1:-}" in
"" | -h | --help)
	usage
	[ $# -gt 0 ] || exit 2
	exit 0
	;;
esac
fl="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
action="${2:-}"
case "$action" in
"") target=rfs:storesSet arg=rfs.conf old="" new=" rfs.conf" ;;
list) target=rfs:stores arg="" old=" list" new="" ;;
set | add | delete)
	if [ $# -lt 3 ]; then
		echo "patch-stores.sh: $action needs an argument" >&2
		usage >&2
		exit 2
	fi
	# The note names the argument, never its value: it may hold a secret.
	name=STORES
	[ "$action" != delete ] || name=STORE
	target="rfs:stores${action^}" arg="$3" old=" $action $name" new=" $name"
	;;
*)
	echo "patch-stores.sh: unknown action: $action" >&2
	usage >&2
	exit 2
	;;
esac
deprecated "patch-stores.sh FL$old" "mage $target FL$new"
if [ -n "$arg" ]; then
	run_mage "$target" "$fl" "$arg"
else
	run_mage "$target" "$fl"
fi
