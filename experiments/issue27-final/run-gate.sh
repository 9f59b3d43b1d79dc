#!/bin/bash
# Issue 27's final judges and section 12's gated candidate (docs/protocol.md section 12, step 4b): once
# experiments/issue27-dev/rule-gate.js says "robust-mf02-gate becomes the default", robust-mf02-gate beside
# robust-mf02 in one call, clean seeds 1-3, on every final judge (a change made after those judges were
# trained: reported as such, beside the grid of section 10). The build is pinned to the commit that froze
# the candidate (5d972ad). Resumable (run.sh skips a run whose report exists); two copies may run at once on
# disjoint ORDERs. Records: experiments/records/issue27-final/j<seed>/grid-gate/s<clean seed>/<method>/.
set -eu
cd "$(dirname "$0")/../.."
export JUDGES_ROOT=${JUDGES_ROOT:-/work/judges/final} RECORDS=experiments/records/issue27-final WORK=${WORK:-/work/final27}
THREADS=${THREADS:-1}
node experiments/issue27-dev/rule-gate.js | tail -1 | grep -q "robust-mf02-gate becomes the default" || { echo "rule-gate.js has not made robust-mf02-gate the default: nothing to run" >&2; exit 1; }
PIN=5d972ad DIR=${TOOLKIT:-/work/final27/gate-pinned}
if [ ! -e "$DIR/dist/src/cli/main.js" ]; then
  git worktree add --detach "$DIR" "$PIN" && (cd "$DIR" && npm ci --ignore-scripts --no-audit --no-fund && node scripts/build-native.js && npx tsc -p .)
fi
[ "$(git -C "$DIR" rev-parse --short=7 HEAD)" = "$PIN" ] || { echo "$DIR is not at $PIN" >&2; exit 1; }
ORDER=${ORDER:-"1005 1001 1002 1003 1008 1004 1012 1014 1006 1009 1007 1013 1010 1015 1011 1016"}
for j in $ORDER; do
  [ -e "$JUDGES_ROOT/$j/judge.json" ] || { echo "judge $j is not trained here (experiments/issue27-final/run.sh trains it): skipped" >&2; continue; }
  CLI=$DIR/dist/src/cli/main.js THREADS=$THREADS bash experiments/issue27-dev/run.sh grid-gate $j "1 2 3" vardefense:robust-mf02-gate,vardefense:robust-mf02
done
