// Wall time of each defense against plain fine-tuning (FT) on the same model and clean split,
// alternating the methods in every round; medians and the ratio to FT.
//   node dist/bench/defense-cost.js --run <dir> [--rounds 3] [--methods vardefense,ft]
//     a finished training run: whole defenses as `defend` runs them (FT: its 10 epochs)
//   node dist/bench/defense-cost.js --planted [--width 16] [--train 10000] [--train-epochs 1] [--rounds 3] [--methods ...]
//     the planted fixture's model and clean split (test/fixtures/planted.ts), which also times every
//     optimisation step: the per-step cost of each method's main fine-tuning stage against FT's, the
//     same clean split and batch size, so the ratio is the per-step overhead (statistics, penalty, distillation)
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { defend } from '../src/cli/defend';
import { DefenseHooks, restore, snapshot } from '../src/defenses/common';
import { defenseMethod, resolveOptions } from '../src/defenses/registry';
import { plantBackdoor } from '../test/fixtures/planted';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const sum = (v: number[]): number => v.reduce((a, b) => a + b, 0);

/** The fine-tuning stage whose steps are compared (the defenses' stage names). */
const MAIN_STAGE: Record<string, string> = { ft: 'fine-tune', vardefense: 'purify', 'fine-pruning': 'fine-tune', nad: 'nad student' };

interface Timing { seconds: number; epochs: number; images: number; stepSeconds: number[] }

/** Progress hooks that time each optimisation step of `stage` and count its images (from the previous step's end; a stage's first step is left out). */
function stepTimer(stage: string): DefenseHooks & { steps: number[]; images: number } {
  let last = 0, lastStage = '';
  const t = {
    steps: [] as number[], images: 0,
    progress: (s: string, images: number) => {
      const now = performance.now();
      if (s === stage && lastStage === stage) {
        t.steps.push((now - last) / 1000);
        t.images += images;
      }
      last = now;
      lastStage = s;
    },
  };
  return t;
}

function plantedTimes(methods: string[], rounds: number): Map<string, Timing[]> {
  const p = plantBackdoor({ width: Number(arg('width', '16')), train: Number(arg('train', '10000')), epochs: Number(arg('train-epochs', '1')) });
  process.stderr.write(`planted fixture: width ${arg('width', '16')}, ${p.data.train.labels.numel} clean training images\n`);
  const original = snapshot(p.model);
  const times = new Map<string, Timing[]>(methods.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    for (const label of r % 2 ? [...methods].reverse() : methods) {
      const [m, preset = 'default'] = label.split(':');
      const o = resolveOptions(defenseMethod(m), preset) as { epochs: number };
      const timer = stepTimer(MAIN_STAGE[m] ?? 'fine-tune');
      restore(p.model, original);
      const report = defenseMethod(m).run(p.model, p.data, o as never, timer);
      times.get(label)!.push({ seconds: report.seconds, epochs: o.epochs, images: timer.images, stepSeconds: timer.steps });
      process.stderr.write(`round ${r + 1} ${label}: ${report.seconds.toFixed(2)} s, median step ${(1000 * median(timer.steps)).toFixed(1)} ms\n`);
    }
  }
  return times;
}

function runTimes(run: string, methods: string[], rounds: number): Map<string, Timing[]> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'defense-cost-'));
  const times = new Map<string, Timing[]>(methods.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    for (const m of r % 2 ? [...methods].reverse() : methods) {
      const [o] = defend({ run, method: m, set: [], out, valFraction: 0.1, force: true, json: false });
      times.get(m)!.push({ seconds: o.report.seconds, epochs: NaN, images: NaN, stepSeconds: [] });
      process.stderr.write(`round ${r + 1} ${m}: ${o.report.seconds.toFixed(1)} s\n`);
    }
  }
  fs.rmSync(out, { recursive: true });
  return times;
}

const run = arg('run', '');
const planted = process.argv.includes('--planted');
if (!run && !planted) throw new Error('--run <dir> (a finished training run of a backdoored model) or --planted');
const rounds = Number(arg('rounds', '3'));
const methods = arg('methods', 'vardefense,ft').split(',');
const times = planted ? plantedTimes(methods, rounds) : runTimes(run, methods, rounds);

// per round: the whole defense's seconds, its main stage's median step, and its seconds per epoch per image
// (the main stage's steps summed over the images it trained on)
const ft = times.get('ft');
const perImage = (t: Timing): number => sum(t.stepSeconds) / t.images;
const rows = methods.map((m) => {
  const t = times.get(m)!;
  const row = {
    method: m, median_s: median(t.map((x) => x.seconds)), all_s: t.map((x) => x.seconds),
    ratio_to_ft: ft ? median(t.map((x) => x.seconds)) / median(ft.map((x) => x.seconds)) : NaN,
    median_step_ms: planted ? 1000 * median(t.map((x) => median(x.stepSeconds))) : NaN,
    step_ratio_to_ft: NaN, us_per_epoch_image: planted ? 1e6 * median(t.map(perImage)) : NaN, epoch_image_ratio_to_ft: NaN,
  };
  if (planted && ft) {
    row.step_ratio_to_ft = row.median_step_ms / (1000 * median(ft.map((x) => median(x.stepSeconds))));
    row.epoch_image_ratio_to_ft = row.us_per_epoch_image / (1e6 * median(ft.map(perImage)));
  }
  return row;
});
console.log(process.argv.includes('--json') ? JSON.stringify(rows) : rows.map((r) => `${r.method}: median ${r.median_s.toFixed(2)} s (${r.all_s.map((s) => s.toFixed(2)).join(', ')}), ${r.ratio_to_ft.toFixed(2)}x FT`
  + (planted ? `; median step ${r.median_step_ms.toFixed(1)} ms, ${r.step_ratio_to_ft.toFixed(3)}x FT's; ${r.us_per_epoch_image.toFixed(1)} us per epoch-image, ${r.epoch_image_ratio_to_ft.toFixed(3)}x FT's` : '')).join('\n'));
