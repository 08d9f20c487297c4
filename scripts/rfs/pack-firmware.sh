#!/usr/bin/env bash
# Compatibility shim: `mage rfs:packFirmware` packs every linux-firmware*
# package of the Alpine mirror, with firmware/ on top, into
# dist/flists/firmware-<FIRMWARE_TAG or date>.fl, as this script did since
# 2025-09 (FIRMWARE_FLIST_SOURCE="local" packs firmware/ alone).
set -euo pipefail
source "$(dirname "$0")/../lib/mage.sh"
deprecated "scripts/rfs/pack-firmware.sh" "mage rfs:packFirmware"
run_mage rfs:packFirmware
