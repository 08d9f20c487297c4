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
# The first 50 lines of the tree. awk reads the whole tree instead of
# closing the pipe early as head does, so under pipefail the pipeline fails
# only when rfs:tree itself does.
run_mage rfs:tree "$fl" | awk -v fl="$fl" 'NR <= 50 { print } END { if (NR > 50) printf "... %d more entries (mage rfs:tree %s)\n", NR - 50, fl }'
run_mage rfs:verify "$fl"
if [ "${2:-}" = "--mount" ]; then
	run_mage rfs:mount "$fl" "${3:?--mount needs a directory}"
fi
