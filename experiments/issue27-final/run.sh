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
R=experiments/issue27-dev/run.sh
# The order of the work, not the list (experiments/judges/final.json, unchanged): every trigger family
# early, since a session may end before the rest (patches, blends, SIG, WaNet, clean-label, all-to-all
# interleaved; 1001-1003 were done first, in the list's order). Each judge is trained when its turn comes,
# then defended over clean seeds 1-3; the ablations (clean seed 1) follow, in the same order.
ORDER="1001 1002 1003 1008 1004 1012 1005 1014 1006 1009 1007 1013 1010 1015 1011 1016"
for j in $ORDER; do
  [ -e "$JUDGES_ROOT/$j/judge.json" ] || /usr/bin/python3 scripts/judges/factory.py train-list --list experiments/judges/final.json \
    --root "$JUDGES_ROOT" --threads "$THREADS" --only $j
  $R grid $j "1 2 3" vardefense,vardefense:bn-distill-eval,fst,ft:published
done
for j in $ORDER; do
  $R ablations $j 1 vardefense:robust-lambda0,vardefense:robust-no-distill,vardefense:robust-random --no-verdict
done
