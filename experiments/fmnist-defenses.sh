#!/bin/bash
# Regenerates the Fashion-MNIST defense tables of docs/results.md: seven backdoored ResNet-18 (width 16)
# models, one per attack setting of the paper (patch 3/5/7 fixed and random, blended noise; 5% poison,
# target 0), then VarDefense (paper and bn-distill presets) and FT on each, and every baseline on the
# 3x3 fixed patch and on blended noise. Finished steps are skipped, so a killed run continues.
# usage: experiments/fmnist-defenses.sh [runs-dir]   (about 2 h on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
RUNS=${1:-runs}
CLI="node dist/src/cli/main.js"
COMMON="--dataset fashion-mnist --model resnet18 --width 16 --poison-ratio 0.05 --target 0 --epochs 4 --seed 1 --no-eval-each-epoch"
declare -A ATTACKS=(
  [patch3-fixed]="--attack patch --trigger-size 3"   [patch3-random]="--attack patch --trigger-size 3 --position random"
  [patch5-fixed]="--attack patch --trigger-size 5"   [patch5-random]="--attack patch --trigger-size 5 --position random"
  [patch7-fixed]="--attack patch --trigger-size 7"   [patch7-random]="--attack patch --trigger-size 7 --position random"
  [blend]="--attack blend --alpha 0.2")
for s in patch3-fixed patch3-random patch5-fixed patch5-random patch7-fixed patch7-random blend; do
  run=$RUNS/fm16-$s
  [ -f $run/metrics.json ] || $CLI train $COMMON ${ATTACKS[$s]} --out $run --resume
  $CLI defend --run $run --method ft,vardefense:paper,vardefense:bn-distill --out $RUNS/defended/$s >&2
  if [ $s = patch3-fixed ] || [ $s = blend ]; then
    $CLI defend --run $run --method clp,fine-pruning,nad --out $RUNS/defended/$s >&2
    # fewer iterations than published (2,000 / 10 generator epochs per class) to fit CPU time
    $CLI defend --run $run --method anp --set iterations=400 --out $RUNS/defended/$s >&2
    $CLI defend --run $run --method gan --set generatorEpochs=2 --out $RUNS/defended/$s >&2
  fi
done
$CLI report $RUNS/defended
