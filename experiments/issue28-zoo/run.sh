#!/bin/bash
# Issue 28's evidence on real data (docs/results.md, "Issue 28: torchvision classifiers trained by
# PyTorch"): train the zoo (scripts/judges/zoo.py, experiments/judges/zoo.json), then defend each model
# with the default and FT over clean seeds 1-3, as a user would, and keep the records (report.json
# only) in experiments/records/issue28-zoo/j<seed>/zoo/s<clean seed>/<method>/. Resumable: trained
# models and finished runs are skipped.   usage: bash experiments/issue28-zoo/run.sh [NAMES] [SEEDS]
set -u
cd "$(dirname "$0")/../.."
root=${ZOO_ROOT:-/work/zoo}
names=${1:-"zoo-mobilenet_v2 zoo-resnet50 zoo-convnext_tiny zoo-vgg16_bn"}
seeds=${2:-"1 2 3"}
/usr/bin/python3 scripts/judges/zoo.py train-list --list experiments/judges/zoo.json --root "$root" --threads ${THREADS:-2} --only "$(echo $names | tr ' ' ,)" || exit 1
for n in $names; do
  d=$root/$n
  seed=$(python3 -c "import json;print(json.load(open('$d/zoo.json'))['recipe']['seed'])")
  mkdir -p experiments/judges/zoo-records && cp "$d/zoo.json" experiments/judges/zoo-records/$n.json
  for s in $seeds; do
    rec=experiments/records/issue28-zoo/j$seed/zoo/s$s
    [ -e "$rec/ft/report.json" ] && { echo "skip $n s$s"; continue; }
    out=$d/defend-s$s
    if [ ! -e "$out/ft/report.json" ]; then
      echo "$(date +%T) $n s$s"
      flags=$(python3 -c "import json;print(json.load(open('$d/zoo.json'))['defend_flags'])")
      VARDEFENSE_THREADS=${THREADS:-2} node dist/src/cli/main.js defend $flags --clean-size 3000 --clean-seed $s \
        --method vardefense,ft --out "$out" > "$out.log" 2>&1 || { echo "FAILED $n s$s (see $out.log)"; tail -3 "$out.log"; continue; }
    fi
    for m in vardefense ft; do mkdir -p "$rec/$m"; cp "$out/$m/report.json" "$rec/$m/report.json"; done
    grep -E "ASR .* -> " "$out.log" | sed "s/^/  /"
  done
done
