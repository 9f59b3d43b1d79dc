// Wall time of each defense against plain fine-tuning (FT) on the same model and clean split,
// alternating the methods in every round; medians and the ratio to FT.
//   node dist/bench/defense-cost.js --run <dir> [--rounds 3] [--methods vardefense,ft]
//     a finished training run: whole defenses as `defend` runs them (FT: its 10 epochs)
//   node dist/bench/defense-cost.js --planted [--width 16] [--size 16] [--train 10000] [--train-epochs 1] [--rounds 3] [--methods ...] [--precisions fp32,bf16]
//     the planted fixture's model and clean split (test/fixtures/planted.ts), which also times every
//     optimisation step: the per-step cost of each method's main fine-tuning stage against FT's, the
//     same clean split and batch size, so the ratio is the per-step overhead (statistics, penalty, distillation);
//     --precisions runs every method in each (bf16: autocast, where the CPU has it), each against FT in the same
//     precision, and reports bf16's speed-up over fp32 per method
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { defend } from '../src/pipeline/defend';
import { DefenseHooks, restore, snapshot } from '../src/defenses/common';
import { defenseMethod, resolveOptions } from '../src/defenses/registry';
import { plantBackdoor } from '../test/fixtures/planted';
import { assertPrecision, Precision, PRECISIONS, withPrecision } from '../src/torch';
import { arg } from './timing';

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const sum = (v: number[]): number => v.reduce((a, b) => a + b, 0);

/** The fine-tuning stage whose steps are compared (the defenses' stage names). */
const MAIN_STAGE: Record<string, string> = { ft: 'fine-tune', vardefense: 'purify', 'fine-pruning': 'fine-tune', nad: 'nad student' };

/** wall seconds, and with --planted the process's CPU seconds (user + system), robust to other jobs on a loaded machine */
interface Timing { seconds: number; cpuSeconds: number; epochs: number; images: number; stepSeconds: number[]; stepCpuSeconds: number[] }

const cpuNow = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

/** Progress hooks that time each optimisation step of `stage` and count its images (from the previous step's end; a stage's first step is left out). */
function stepTimer(stage: string): DefenseHooks & { steps: number[]; cpuSteps: number[]; images: number } {
  let last = 0, lastCpu = 0, lastStage = '';
  const t = {
    steps: [] as number[], cpuSteps: [] as number[], images: 0,
    progress: (s: string, images: number) => {
      const now = performance.now(), cpu = cpuNow();
      if (s === stage && lastStage === stage) {
        t.steps.push((now - last) / 1000);
        t.cpuSteps.push(cpu - lastCpu);
        t.images += images;
      }
      last = now;
      lastCpu = cpu;
      lastStage = s;
    },
  };
  return t;
}

/** 'method' in fp32, 'method@bf16' in bf16. */
const labelOf = (m: string, p: Precision): string => (p === 'fp32' ? m : `${m}@${p}`);

function plantedTimes(methods: string[], rounds: number, precisions: Precision[]): Map<string, Timing[]> {
  const p = plantBackdoor({ width: Number(arg('width', '16')), size: Number(arg('size', '16')), train: Number(arg('train', '10000')), epochs: Number(arg('train-epochs', '1')) });
  process.stderr.write(`planted fixture: width ${arg('width', '16')}, ${arg('size', '16')}x${arg('size', '16')}, ${p.data.train.labels.numel} clean training images\n`);
  const original = snapshot(p.model);
  const runs = precisions.flatMap((pr) => methods.map((m) => [m, pr] as const));
  const times = new Map<string, Timing[]>(runs.map(([m, pr]) => [labelOf(m, pr), []]));
  for (let r = 0; r < rounds; r++) {
    for (const [method, precision] of r % 2 ? [...runs].reverse() : runs) {
      const label = labelOf(method, precision);
      const [m, preset = 'default'] = method.split(':');
      const o = resolveOptions(defenseMethod(m), preset) as { epochs: number };
      const timer = stepTimer(MAIN_STAGE[m] ?? 'fine-tune');
      restore(p.model, original);
      const cpu0 = cpuNow();
      const report = withPrecision(precision, () => defenseMethod(m).run(p.model, p.data, o as never, timer));
      const t: Timing = { seconds: report.seconds, cpuSeconds: cpuNow() - cpu0, epochs: o.epochs, images: timer.images, stepSeconds: timer.steps, stepCpuSeconds: timer.cpuSteps };
      times.get(label)!.push(t);
      process.stderr.write(`round ${r + 1} ${label}: ${t.seconds.toFixed(2)} s (CPU ${t.cpuSeconds.toFixed(2)} s), median step ${(1000 * median(t.stepSeconds)).toFixed(1)} ms (CPU ${(1000 * median(t.stepCpuSeconds)).toFixed(1)} ms)\n`);
    }
  }
  return times;
}

function runTimes(run: string, methods: string[], rounds: number): Map<string, Timing[]> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'defense-cost-'));
  const times = new Map<string, Timing[]>(methods.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    for (const m of r % 2 ? [...methods].reverse() : methods) {
      const [o] = defend({ run, methods: m, out, valFraction: 0.1, force: true });
      times.get(m)!.push({ seconds: o.report.seconds, cpuSeconds: NaN, epochs: NaN, images: NaN, stepSeconds: [], stepCpuSeconds: [] });
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
const precisions = arg('precisions', 'fp32').split(',') as Precision[];
for (const p of precisions) {
  if (!(PRECISIONS as readonly string[]).includes(p)) throw new Error(`--precisions: unknown precision '${p}' (known: ${PRECISIONS.join(', ')})`);
  assertPrecision(p);
}
if (!planted && precisions.join() !== 'fp32') throw new Error('--precisions: with --planted only');
const times = planted ? plantedTimes(methods, rounds, precisions) : runTimes(run, methods, rounds);

// per method: medians over the rounds of the whole defense's seconds, of its main stage's median step,
// and of its seconds per epoch per image (the main stage's timed steps over the images they trained on);
// with --planted each in wall and CPU time; each as a ratio to FT's median, and (paired) as the median
// over rounds of the ratio to FT's value in the same round, which a shared machine's load disturbs less
const perImage = (steps: number[], images: number): number => sum(steps) / images;
const measures: Record<string, (t: Timing) => number> = {
  total_s: (t) => t.seconds, total_cpu_s: (t) => t.cpuSeconds,
  step_ms: (t) => 1000 * median(t.stepSeconds), step_cpu_ms: (t) => 1000 * median(t.stepCpuSeconds),
  epoch_image_us: (t) => 1e6 * perImage(t.stepSeconds, t.images), epoch_image_cpu_us: (t) => 1e6 * perImage(t.stepCpuSeconds, t.images),
};
const shown = planted ? Object.keys(measures) : ['total_s'];
const rows = precisions.flatMap((pr) => methods.map((m) => {
  const t = times.get(labelOf(m, pr))!, ft = times.get(labelOf('ft', pr)), fp32 = times.get(m);
  const row: Record<string, unknown> = { method: labelOf(m, pr), precision: pr, epochs: t[0].epochs, all_total_s: t.map((x) => x.seconds) };
  for (const k of shown) {
    row[k] = median(t.map(measures[k]));
    row[`${k}_ratio_to_ft`] = ft ? (row[k] as number) / median(ft.map(measures[k])) : NaN;
    row[`${k}_paired_ratio`] = ft ? median(t.map((x, r) => measures[k](x) / measures[k](ft[r]))) : NaN;
    // bf16's speed-up over the same method in fp32 (paired by round)
    if (pr !== 'fp32' && fp32) row[`${k}_fp32_over_this`] = median(t.map((x, r) => measures[k](fp32[r]) / measures[k](x)));
  }
  return row;
}));
const fmt = (r: Record<string, unknown>): string => `${r.method}: ` + shown.map((k) => `${k} ${(r[k] as number).toFixed(k.endsWith('_s') ? 2 : 1)} (${(r[`${k}_ratio_to_ft`] as number).toFixed(3)}x FT, paired ${(r[`${k}_paired_ratio`] as number).toFixed(3)}` +
  `${r[`${k}_fp32_over_this`] === undefined ? '' : `; ${(r[`${k}_fp32_over_this`] as number).toFixed(2)}x faster than fp32`})`).join(', ');
console.log(process.argv.includes('--json') ? JSON.stringify(rows) : rows.map(fmt).join('\n'));
