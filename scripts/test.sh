#!/usr/bin/env bash
# Set-up (idempotent), then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node --test --test-concurrency=1 dist/test/
