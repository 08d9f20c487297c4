#!/usr/bin/env bash
# Compatibility shim for the quick rebuild after editing zinit/. Stage
# fingerprints already cover zinit/, so `mage build` reruns zinit_setup and
# the stages after it, and nothing before. --verify-only rebuilds nothing and
# checks the current archive instead.
set -euo pipefail
source "$(dirname "$0")/lib/mage.sh"

case "${1:-}" in
--verify-only)
	run_mage status
	run_mage zinit:check
	run_mage initramfs:check dist/initramfs.cpio.xz
	;;
"")
	deprecated "rebuild-after-zinit.sh" "mage build (zinit/ edits rerun zinit_setup onwards)"
	run_mage status
	run_mage build
	run_mage status
	;;
-h | --help) echo "Usage: scripts/rebuild-after-zinit.sh [--verify-only]"; exit 0 ;;
*) echo "unknown option: $1" >&2; exit 2 ;;
esac
