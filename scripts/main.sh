#!/usr/bin/env bash
# Set-up (idempotent), then the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/src/cli/main.js demo "$@"
