#!/bin/bash
# Issue 27's final evaluation (docs/protocol.md section 10), resumable: train the final judges (after the
# freeze) and defend each with every defense of the grid over clean seeds 1-3; then (second pass, since the
# second rule made robust-mf02 the default) robust-mf02 and robust in one call over clean seeds 1-3; and the
# default's ablations on seed 1. Records (report.json only) go to
# experiments/records/issue27-final/j<seed>/<tag>/s<clean seed>/<method>/.
set -eu
cd "$(dirname "$0")/../.."
export JUDGES_ROOT=${JUDGES_ROOT:-/work/judges/final} RECORDS=experiments/records/issue27-final WORK=${WORK:-/work/final27}
THREADS=${THREADS:-2}
# Each pass is defended by one build, pinned (a later commit may change float rounding: another kernel or
# order of operations): the grid by the build it began with (docs/protocol.md section 10), the second pass
# and the ablations by the commit that applied the second rule (docs/protocol.md, "The rule applied").
build() { # build <commit> <dir>: a worktree of <commit>, built once; prints its CLI
  if [ ! -e "$2/dist/src/cli/main.js" ]; then
    git worktree add --detach "$2" "$1" >&2 && (cd "$2" && npm ci --ignore-scripts --no-audit --no-fund && node scripts/build-native.js && npx tsc -p .) >&2
  fi
  [ "$(git -C "$2" rev-parse --short=7 HEAD)" = "$1" ] || { echo "$2 is not at $1" >&2; exit 1; }
  echo "$2/dist/src/cli/main.js"
}
GRID_CLI=$(build 195866b ${TOOLKIT:-/work/grid27})
MF02_CLI=$(build d2312d2 ${TOOLKIT2:-/work/grid27b})
R=experiments/issue27-dev/run.sh
# The order of the work, not the list (experiments/judges/final.json, unchanged): every trigger family
# early, since a session may end before the rest (patches, blends, SIG, WaNet, clean-label, all-to-all
# interleaved; 1001-1003 were done first, in the list's order). Each judge is trained when its turn comes
# (again where a machine lost it: another model, so each pass compares its defenses on one model), then
# both passes run on it; the ablations follow, in the same order.
ORDER=${ORDER:-"1001 1002 1003 1008 1004 1012 1005 1014 1006 1009 1007 1013 1010 1015 1011 1016"}
# Two chains on disjoint judges (e.g. ORDER="1008 1012 ..." THREADS=1 beside ORDER="1004 1005 ..." THREADS=1)
# use a 2-core machine better than one at 2 threads; each records its threads in every report.
train() { # the judge's model, trained where missing; its judge.json kept (a retrained one beside the first)
  [ -e "$JUDGES_ROOT/$1/judge.json" ] && return
  /usr/bin/python3 scripts/judges/factory.py train-list --list experiments/judges/final.json --root "$JUDGES_ROOT" --threads "$THREADS" --only $1
  local keep=experiments/judges/final-records/$1.json
  [ -e "$keep" ] && keep=experiments/judges/final-records/$1-retrained-$(date +%Y%m%d%H%M).json
  cp "$JUDGES_ROOT/$1/judge.json" "$keep"
}
for j in $ORDER; do
  train $j
  CLI=$GRID_CLI $R grid $j "1 2 3" vardefense,vardefense:bn-distill-eval,fst,ft:published
  CLI=$MF02_CLI $R grid-mf02 $j "1 2 3" vardefense:robust-mf02,vardefense:robust
done
for j in $ORDER; do
  train $j
  CLI=$MF02_CLI $R ablations-mf02 $j 1 vardefense:robust-mf02,vardefense:robust-mf02-no-distill,vardefense:robust-mf02-random,vardefense:robust-lambda0 --no-verdict
done
