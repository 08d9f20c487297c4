# Shared by the compatibility shims: run a mage target from the project root
# with mage when it is installed, else through the zero-install bootstrap.
# shellcheck shell=bash

ZOS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

run_mage() {
	cd "$ZOS_ROOT" || exit 1
	if command -v mage >/dev/null 2>&1; then
		mage "$@"
	else
		go run magefile.go "$@"
	fi
}

# deprecated OLD NEW: tell the maintainer the new form once, then go on.
deprecated() {
	echo "note: '$1' is now '$2' (this script is a thin shim over it)" >&2
}
