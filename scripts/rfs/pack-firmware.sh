#!/usr/bin/env bash
# Compatibility shim: `mage rfs:packFirmware` packs firmware/ (or
# INSTALL_DIR/lib/firmware) into dist/flists/firmware-<FIRMWARE_TAG or date>.fl.
set -euo pipefail
source "$(dirname "$0")/../lib/mage.sh"
deprecated "scripts/rfs/pack-firmware.sh" "mage rfs:packFirmware"
run_mage rfs:packFirmware
