#!/bin/bash
# Issue 27 runs on the judges (docs/protocol.md section 10): the DEVELOPMENT judges by default;
# the final ones with JUDGES_ROOT=/work/judges/final RECORDS=experiments/records/issue27-final.
# usage: run.sh TAG "JUDGES" "CLEAN_SEEDS" METHODS [defend options...]
# Each run's report.json is copied to $RECORDS/j<judge>/<tag>/s<seed>/<method>/.
# A run whose report exists is skipped (resumable). CLI: another build's dist/src/cli/main.js.
set -u
cd "$(dirname "$0")/../.."
tag=$1; judges=$2; seeds=$3; methods=$4; shift 4
root=${JUDGES_ROOT:-/work/judges/dev}
work=${WORK:-/work/dev27}
for j in $judges; do
  J=$root/$j
  flags=$(python3 -c "import json,sys;print(json.load(open('$J/judge.json'))['model_flags'])")
  for s in $seeds; do
    rec=${RECORDS:-experiments/records/issue27-dev}/j$j/$tag/s$s
    first=${methods%%,*}; first=${first/:default/}; first=${first/:/-}
    [ -e "$rec/$first/report.json" ] && { echo "skip j$j $tag s$s"; continue; }
    out=$work/j$j/$tag/s$s; mkdir -p "$(dirname "$out")"
    echo "$(date +%T) j$j $tag s$s $methods $*"
    VARDEFENSE_THREADS=${THREADS:-2} node ${CLI:-dist/src/cli/main.js} defend $flags --clean-size 3000 --clean-seed $s \
      --asr-images $J/test-triggered.npz --method "$methods" --out "$out" "$@" >"$out.log" 2>&1 || { echo "FAILED j$j $tag s$s (see $out.log)"; tail -3 "$out.log"; continue; }
    for d in "$out"/*/; do m=$(basename "$d"); mkdir -p "$rec/$m"; cp "$d/report.json" "$rec/$m/report.json"; done
    grep -E "ASR .* -> " "$out.log" | sed "s/^/  /"
  done
done
