#!/bin/bash
# Issue 29's parity check of a defense run in bf16 against fp32: development judges 101 (4x4 checkerboard)
# and 102 (blended uniform noise, alpha 0.15) defended by the default on clean seeds 1-3 in both precisions
# (docs/results.md, "Issue 29: the default defense in bf16").
# Records: experiments/records/issue29-bf16/j<judge>/<fp32|bf16>/s<seed>/vardefense/. Resumable.
cd "$(dirname "$0")/../.."
export RECORDS=experiments/records/issue29-bf16 WORK=${WORK:-/work/bf16par}
for j in 101 102; do for s in 1 2 3; do
  bash experiments/issue27-dev/run.sh fp32 $j $s vardefense --no-verdict
  bash experiments/issue27-dev/run.sh bf16 $j $s vardefense --no-verdict --precision bf16
done; done
