#!/bin/bash
# Issue 29 item 2: the toolkit's own models trained and defended in fp32 and in bf16 (train-parity.yaml),
# each precision in its own folder; their results.jsonl kept in
# experiments/records/issue29-bf16-train/<fp32|bf16>/ (docs/results.md). Resumable (the experiment is).
set -eu
cd "$(dirname "$0")/../.."
work=${WORK:-/work/bf16train}
for p in fp32 bf16; do
  VARDEFENSE_THREADS=${THREADS:-2} node ${CLI:-dist/src/cli/main.js} experiment experiments/issue29-bf16/train-parity.yaml \
    --out "$work/$p" --precision $p
  mkdir -p experiments/records/issue29-bf16-train/$p
  cp "$work/$p/results.jsonl" experiments/records/issue29-bf16-train/$p/results.jsonl
done
