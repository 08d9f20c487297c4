#!/usr/bin/env bash
# Compatibility shim: inspect, tree and verify an flist with the Go tools
# (rfs flist inspect / rfs flist tree / a reachability check of every block).
# Usage: scripts/rfs/verify-flist.sh FILE.fl [--mount DIR]
set -euo pipefail
source "$(dirname "$0")/../lib/mage.sh"

fl="${1:?usage: scripts/rfs/verify-flist.sh FILE.fl [--mount DIR]}"
fl="$(cd "$(dirname "$fl")" && pwd)/$(basename "$fl")"
deprecated "scripts/rfs/verify-flist.sh FL" "mage rfs:inspect FL; mage rfs:tree FL; mage rfs:verify FL"
run_mage rfs:inspect "$fl"
run_mage rfs:tree "$fl" | head -n 50
run_mage rfs:verify "$fl"
if [ "${2:-}" = "--mount" ]; then
	run_mage rfs:mount "$fl" "${3:?--mount needs a directory}"
fi
