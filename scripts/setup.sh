#!/usr/bin/env bash
# Idempotent set-up for a Debian 12 machine: apt packages, npm packages, the libtorch addon and the
# TypeScript build. Fast when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

# Quiet when a step works, its whole log when it fails (VARDEFENSE_VERBOSE=1: everything, live).
LOG=$(mktemp "${TMPDIR:-/tmp}/vardefense-setup.XXXXXX")
trap 'rm -f "$LOG"' EXIT
quietly() {
  local what=$1; shift
  if [ "${VARDEFENSE_VERBOSE:-}" = 1 ]; then "$@"; return; fi
  if ! "$@" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "setup: $what failed (its full output is above)" >&2
    exit 1
  fi
}

APT_PACKAGES=(libtorch-dev libopenblas0-openmp python3-torch python3-torchvision python3-pil python3-numpy dataset-fashion-mnist g++ make python3 chromium redis-server)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  quietly "apt-get update" $SUDO apt-get update -q
  quietly "apt-get install" $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  quietly "npm ci" npm ci --ignore-scripts --no-audit --no-fund
fi

node scripts/build-native.js
quietly "the TypeScript build (tsc)" node node_modules/typescript/bin/tsc -p .
