#!/bin/bash
# Issue 27's final evaluation (docs/protocol.md section 10), resumable: train the final judges (after the
# freeze) and defend each with every defense of the grid over clean seeds 1-3, and the ablations on seed 1.
# Records (report.json only) go to experiments/records/issue27-final/j<seed>/<tag>/s<clean seed>/<method>/.
set -eu
cd "$(dirname "$0")/../.."
export JUDGES_ROOT=${JUDGES_ROOT:-/work/judges/final} RECORDS=experiments/records/issue27-final WORK=${WORK:-/work/final27}
THREADS=${THREADS:-2}
# the toolkit as it was when the grid began (docs/protocol.md section 10): a later commit may change float
# rounding (another kernel or order of operations), so every judge is defended by this one build
PIN=195866b TOOLKIT=${TOOLKIT:-/work/grid27}
if [ ! -e "$TOOLKIT/dist/src/cli/main.js" ]; then
  git worktree add --detach "$TOOLKIT" $PIN && (cd "$TOOLKIT" && npm ci && npx tsc -p .)
fi
[ "$(git -C "$TOOLKIT" rev-parse --short=7 HEAD)" = $PIN ] || { echo "$TOOLKIT is not at $PIN"; exit 1; }
export CLI=$TOOLKIT/dist/src/cli/main.js
J="1001 1002 1003 1004 1005 1006 1007 1008 1009 1010 1011 1012 1013 1014 1015 1016"
R=experiments/issue27-dev/run.sh
trained() { for j in $J; do [ -e "$JUDGES_ROOT/$j/judge.json" ] && echo -n "$j "; done; }
grid() {
  $R grid "$1" "1 2 3" vardefense,vardefense:bn-distill-eval,fst,ft:published
  $R ablations "$1" 1 vardefense:robust-lambda0,vardefense:robust-no-distill,vardefense:robust-random --no-verdict
}
# the judges already trained first (a session may end before the rest are), then train the rest, then them
grid "$(trained)"
/usr/bin/python3 scripts/judges/factory.py train-list --list experiments/judges/final.json --root "$JUDGES_ROOT" --threads "$THREADS"
grid "$J"
