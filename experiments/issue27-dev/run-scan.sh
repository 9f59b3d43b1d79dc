#!/bin/bash
# docs/protocol.md section 12, steps 3-4: the frozen candidate `robust-mf02-scan` beside `robust-mf02`
# (and, on 109-111, its control `robust-mf02-share`: the same without the scan), in one call on the same
# model and clean draw, on the dark-patch development judges 109-111 and on section 10's development
# judges 101-106 and 108, clean seeds 1-3 (tag `scan`, records in experiments/records/issue27-scan, apart
# from section 10's development records so that their tables keep their runs); resumable (run.sh skips a
# run whose report exists; JUDGES="..." sets the order, and two copies may run at once). The build is pinned to the commit that froze the candidate. Development judges lost with a
# machine are retrained by the same recipe (another model; both presets run on it).
# Then: node experiments/issue27-dev/rule-scan.js
set -eu
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-1}
export RECORDS=${RECORDS:-experiments/records/issue27-scan}
PIN=${PIN:-d18b170}
DIR=${TOOLKIT:-/work/dev27/scan-pinned}
if [ ! -e "$DIR/dist/src/cli/main.js" ]; then
  git worktree add --detach "$DIR" "$PIN" && (cd "$DIR" && npm ci --ignore-scripts --no-audit --no-fund && node scripts/build-native.js && npx tsc -p .)
fi
[ "$(git -C "$DIR" rev-parse --short=7 HEAD)" = "$PIN" ] || { echo "$DIR is not at $PIN" >&2; exit 1; }
# JUDGES picks another order; two copies may run at once (each judge is locked while one runs it)
for j in ${JUDGES:-109 110 111 103 105 101 104 106 108 102}; do
  exec 9>"/tmp/vardefense-scan-$j.lock"
  flock -n 9 || { echo "judge $j: another copy runs it"; continue; }
  # on the dark-patch judges also the control: the same without the scan (robust-mf02-share)
  methods=vardefense:robust-mf02-scan,vardefense:robust-mf02
  case $j in 109|110|111) methods=$methods,vardefense:robust-mf02-share ;; esac
  if [ ! -e "/work/judges/dev/$j/judge.json" ]; then
    /usr/bin/python3 scripts/judges/factory.py train-list --list experiments/judges/dev.json --root /work/judges/dev --threads "$THREADS" --only $j
    cp /work/judges/dev/$j/judge.json experiments/judges/dev-records/$j-retrained-$(date +%Y%m%d%H%M).json
  fi
  CLI=$DIR/dist/src/cli/main.js THREADS=$THREADS bash experiments/issue27-dev/run.sh scan $j "1 2 3" $methods
done
