#!/usr/bin/env bash
# Compatibility shim: `mage clean` (work folders, markers, dist/) or, with
# --all, `mage clean:all` (also the download cache).
set -euo pipefail
source "$(dirname "$0")/lib/mage.sh"

case "${1:-}" in
--all | -a) deprecated "clean.sh --all" "mage clean:all"; run_mage clean:all ;;
"") deprecated "clean.sh" "mage clean"; run_mage clean ;;
-h | --help) echo "Usage: scripts/clean.sh [--all]"; exit 0 ;;
*) echo "unknown option: $1 (usage: scripts/clean.sh [--all])" >&2; exit 2 ;;
esac
