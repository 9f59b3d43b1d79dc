// Does each defense remove the planted backdoor, and how far from the control? Each number is the
// median (ANP: the mean) over three seeds of the fixture (each its own training set, clean split and
// model), and every assertion compares against plain fine-tuning on the same seed (the control) or the model
// before the defense, with thresholds far from the values observed under every CPU kernel setting
// (docs/notes.md: "Efficacy tests across CPU kernels"). Float kernels differ by instruction set, and
// ~100 SGD steps turn the last bits into a different model: one seed's value may move a lot, the
// median of three moves little. Mechanism checks that must hold exactly live in each defense's file.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { withoutTestSet } from '../../src/data/datasets';
import { fineTune } from '../../src/defenses/common';
import { anp } from '../../src/defenses/anp';
import { clp } from '../../src/defenses/clp';
import { finePruning, pruneDormant } from '../../src/defenses/fine-pruning';
import { ganDefense } from '../../src/defenses/gan';
import { nad } from '../../src/defenses/nad';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { varDefense } from '../../src/defenses/vardefense';
import { Metrics } from '../../src/train/metrics';
import { evaluate, median, planted, Planted } from '../fixtures/planted';

const SEEDS = [1, 2, 3];
const options = <T>(method: string, o: Record<string, unknown> = {}): T => resolveOptions(defenseMethod(method), 'default', o) as unknown as T;
// batch 32: the fixture's 150 training images make two steps per epoch at the default 128
const ft = { batchSize: 32 };

interface Outcome { before: Metrics; after: Metrics }

const before = new Map<number, Metrics>();
/** Runs `defend` on the fresh fixture of every seed; test-set metrics before and after. */
function onEverySeed(defend: (p: Planted, seed: number) => void): Outcome[] {
  return SEEDS.map((seed) => {
    const p = planted(seed);
    if (!before.has(seed)) before.set(seed, evaluate(p));
    withoutTestSet(() => defend(p, seed));
    return { before: before.get(seed)!, after: evaluate(p) };
  });
}

const med = (xs: Outcome[], f: (o: Outcome) => number): number => median(xs.map(f));
const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(3)).join(' ');
function report(name: string, r: Outcome[], extra = ''): { acc: number; asr: number; accDrop: number } {
  const acc = med(r, (o) => o.after.acc), asr = med(r, (o) => o.after.asr!), accDrop = med(r, (o) => o.before.acc - o.after.acc);
  process.stderr.write(`efficacy ${name}: median ASR ${asr.toFixed(3)} (${fmt(r.map((o) => o.after.asr!))}), median ACC ${acc.toFixed(3)} (${fmt(r.map((o) => o.after.acc))}), `
    + `median ACC drop ${accDrop.toFixed(3)}${extra ? `; ${extra}` : ''}\n`);
  return { acc, asr, accDrop };
}

let controlRun: { outcomes: Outcome[]; asr: number; accDrop: number } | undefined;
/** Plain fine-tuning with the same options (median ASR), run once and shared by the tests below. */
function control(): { outcomes: Outcome[]; asr: number; accDrop: number } {
  if (!controlRun) {
    const outcomes = onEverySeed((p) => fineTune(p.model, p.data.train, p.data.norm, options('ft', ft)));
    controlRun = { outcomes, ...report('ft (control)', outcomes) };
  }
  return controlRun;
}

test('the control: the fixture carries a working backdoor that plain fine-tuning keeps', () => {
  const c = control();
  // observed before any defense: ACC 1.000, ASR 1.000 on every seed
  for (const o of c.outcomes) assert.ok(o.before.asr! > 0.9 && o.before.acc > 0.9, `a working backdoor on a learnt clean task: ACC ${o.before.acc} ASR ${o.before.asr}`);
  const p = planted(1);
  assert.deepEqual([p.clean.labels.numel, p.data.train.labels.numel, p.data.val.labels.numel], [300, 150, 150]);
  // observed: ASR 1.000, ACC 1.000 under every kernel setting
  assert.ok(c.asr > 0.8, `fine-tuning alone keeps the backdoor: median ASR ${c.asr}`);
  assert.ok(c.accDrop < 0.05);
});

test('VarDefense removes most of the backdoor that fine-tuning keeps, while clean accuracy holds', () => {
  const r = onEverySeed((p) => varDefense(p.model, p.data, options('vardefense', ft)));
  const m = report('vardefense', r);
  // the default preset (robust-mf02-gate since docs/protocol.md section 12, step 4b: the scan's gate opens on
  // this white patch, so its run is robust-mf02-scan's), observed: ASR .000 on every seed, ACC drop 0, natively and with AVX2;
  // robust-mf02, the default before it: ASR .000 on every seed,
  // ACC drop 0, natively and with AVX2 (robust, the default before: the same)
  // (bn-distill-eval, the default before robust: median .009, per seed .009 / .045 / .000 natively, .064 / .045 / .000 with AVX2)
  assert.ok(m.asr < control().asr - 0.5, `median ASR ${m.asr} vs ${control().asr} for fine-tuning alone`);
  assert.ok(m.accDrop < 0.05, `median ACC drop ${m.accDrop}`);
});

test('NAD removes the backdoor that fine-tuning keeps; clean accuracy holds on most seeds', () => {
  const r = onEverySeed((p) => nad(p.model, p.data, options('nad', ft)));
  const m = report('nad', r);
  // observed: ASR 0.000 on every seed. The attention loss costs clean accuracy on this 150-image fixture
  // on some seeds and kernels (per seed 1 2 3: .283 .012 0 natively in NCHW; .093 0 .022 natively and
  // .163 0 .110 under AVX2 since the fixture runs channels-last, docs/notes.md), so the check is that
  // NAD does not wreck the model: the bound is far below a broken run's drop (about 0.9, a model
  // answering one class) and above every median observed (at most 0.110)
  assert.ok(m.asr < control().asr - 0.7, `median ASR ${m.asr} vs ${control().asr} for fine-tuning alone`);
  assert.ok(m.accDrop < 0.25, `median ACC drop ${m.accDrop}`);
});

test('GAN defense (trigger-size search) names target 0 on every seed and removes the backdoor while clean accuracy holds', () => {
  const found: string[] = [];
  const r = onEverySeed((p) => {
    const g = ganDefense(p.model, p.data, options('gan'));
    const others = Math.max(...g.scores.filter((s) => s.cls !== 0).map((s) => s.score));
    found.push(`${g.target} at ${g.targetSize}: ${g.scores[0].score.toFixed(1)} vs ${others.toFixed(1)}`);
    // observed: target 0 at 3x3 on every seed, score 18-25 against at most 1.6-5.8 for any other class at any size
    assert.equal(g.target, 0);
    assert.ok(g.scores[0].score > 2 * Math.max(others, 1), `target's score far above the others': ${g.scores[0].score} vs ${others}`);
  });
  const m = report('gan', r, `target at size: score vs the next class ${found.join(', ')}`);
  // observed: ASR 0.000 on every seed, ACC drop 0
  assert.ok(m.asr < control().asr - 0.7, `median ASR ${m.asr}`);
  assert.ok(m.accDrop < 0.03, `median ACC drop ${m.accDrop}`);
});

test('CLP keeps clean accuracy on the fixture, whose backdoor is not where CLP looks', () => {
  const counts: number[] = [];
  const r = onEverySeed((p) => {
    const c = clp(p.model, p.data, options('clp'));
    counts.push(c.totalPruned);
    const sd = p.model.stateDict();
    for (const l of c.perLayer) for (const ch of l.pruned) assert.ok(sd.get(`${l.name}.weight`)!.toList()[ch] === 0 && sd.get(`${l.name}.bias`)!.toList()[ch] === 0);
  });
  const m = report('clp', r, `${counts.join(' ')} channels zeroed`);
  // Observed: ASR stays 1.000 (also at u = 2, and after 10 training epochs; u = 1 gives ASR 0.494 at
  // ACC 0.698, earlier measurements); the scores match the published CLP loop run in PyTorch on the same
  // weights. How many channels pass mean + 3 std is itself a float cliff (0 to 4 seen), so only what
  // CLP must not break is asserted. Observed ACC drop 0.
  assert.ok(m.accDrop < 0.05, `median ACC drop ${m.accDrop}`);
});

test('fine-pruning keeps clean accuracy but not the backdoor out on this fixture (a known weakness)', () => {
  const pruned: number[] = [];
  // the pruning stage alone: how much of the backdoor sits in the channels it may prune
  const r = onEverySeed((p) => { pruned.push(pruneDormant(p.model, p.data, options('fine-pruning', ft)).pruned.length); });
  const full = onEverySeed((p) => finePruning(p.model, p.data, options('fine-pruning', ft)));
  report('fine-pruning (pruning stage)', r, `${pruned.join(' ')} of 64 channels pruned`);
  const m = report('fine-pruning', full);
  // Observed: the pruning stops at 23-39 of 64 channels with ASR 0.72-1.00, and fine-tuning brings it
  // back to 1.000 on every seed. Pruning further lowers ASR only together with clean accuracy (seed 1:
  // 45 channels, ACC 0.81 ASR 0.38; 50 channels, ACC 0.59 ASR 0): on this fixture the backdoor shares
  // the last block's channels with the clean task instead of hiding in dormant ones.
  assert.ok(med(r, (o) => o.before.acc - o.after.acc) < 0.05, 'the pruning stage keeps clean accuracy');
  assert.ok(m.accDrop < 0.05, `median ACC drop ${m.accDrop}`);
  assert.ok(m.asr > 0.5, `the backdoor survives fine-pruning on this fixture: median ASR ${m.asr}`);
});

test('ANP lowers the backdoor below fine-tuning\'s without a clean cost, but does not remove it', () => {
  // 100 iterations of 64 images: about 40 passes over the 150 training images
  const r = onEverySeed((p) => anp(p.model, p.data, options('anp', { iterations: 100, batchSize: 64 })));
  const mean = r.reduce((a, o) => a + o.after.asr!, 0) / r.length;
  const m = report('anp', r, `mean ASR ${mean.toFixed(3)}`);
  // Observed ASR per seed with the published perturbation and pruning (issue 13): 0.676 0.000 0.019
  // natively (mean 0.231), 0.894 0.029 0.191 with AVX2 kernels (mean 0.371); ACC drop <= 0.005.
  // Before (perturbation clamped to +-eps, BN weight and bias pruned): 0.745 0.058 0.705 natively,
  // 0.896 0.000 0.256 with AVX2; ACC drop <= 0.02. The masks find the backdoor neurons on some seeds and only in part on others (200 iterations
  // of 128 images: 0.758 0.000 0.672), so a seed's ASR jumps between ~0 and ~0.9 with the kernels and
  // the median of three can too. The assertion is on the mean (seeds 1 and 3 at 0.9 and seed 2 near 0
  // would make 0.6): ANP lowers the backdoor clearly below the control's, it does not remove it.
  assert.ok(mean < control().asr - 0.25, `mean ASR ${mean} vs ${control().asr} for fine-tuning alone`);
  assert.ok(m.accDrop < 0.05, `median ACC drop ${m.accDrop}`);
});
