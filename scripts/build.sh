#!/usr/bin/env bash
# Compatibility shim for the original orchestrator: the build is now
# `mage build` (or `go run magefile.go build`). Stages are incremental by
# content, so most --rebuild-from uses are no longer needed.
set -euo pipefail
source "$(dirname "$0")/lib/mage.sh"

usage() {
	cat <<'USAGE'
Usage: scripts/build.sh [--rebuild-from STAGE] [--force] [--verbose] [--help]

  --rebuild-from STAGE  forget STAGE and every stage after it, then build
                        (mage reset STAGE && mage build)
  --force               rerun every stage (FORCE=1 mage build)
  --verbose             debug output (mage -v build)

Stages: alpine_extract alpine_configure alpine_packages alpine_firmware
components_build components_verify kernel_modules init_script components_copy
zinit_setup modules_setup modules_copy cleanup validation rfs_flists
initramfs_create initramfs_test kernel_build
USAGE
}

rebuild_from="" verbose=()
while [ $# -gt 0 ]; do
	case "$1" in
	--rebuild-from) rebuild_from="${2:?--rebuild-from needs a stage name}"; shift 2 ;;
	--rebuild-from=*) rebuild_from="${1#*=}"; shift ;;
	--force) export FORCE=1; shift ;;
	-v | --verbose) verbose=(-v); shift ;;
	--skip-tests) echo "note: --skip-tests is gone: boot tests moved to ./runit.sh" >&2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
	esac
done

if [ -n "$rebuild_from" ]; then
	deprecated "build.sh --rebuild-from $rebuild_from" "mage reset $rebuild_from && mage build"
	run_mage reset "$rebuild_from"
fi
run_mage "${verbose[@]}" build
