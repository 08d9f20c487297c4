#!/usr/bin/env bash
# Compatibility shim: `mage rfs:packModules` packs the modules tree of
# FULL_VERSION into dist/flists/modules-<FULL_VERSION>.fl (store from
# config/rfs.conf, else a local dir:// store).
set -euo pipefail
source "$(dirname "$0")/../lib/mage.sh"
deprecated "scripts/rfs/pack-modules.sh" "mage rfs:packModules"
run_mage rfs:packModules
