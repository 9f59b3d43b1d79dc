import { test } from 'node:test';
import * as assert from 'assert/strict';
import { manualSeed, rand } from '../../src/torch';
import { withoutTestSet } from '../../src/data/datasets';
import { anomalyIndices, applyMask, NC_PUBLISHED, neuralCleanse, neuralCleanseOptions } from '../../src/defenses/neural-cleanse';
import { median, plantBackdoor, Planted } from '../fixtures/planted';
import { classSearch, VERDICT_DEFAULTS, verdictLine, verdictOf } from '../../src/defenses/verdict';

// the 28x28 fixtures, trained once per seed in this file (Neural Cleanse and the class search read them only)
const fixtures = new Map<number, Planted>();
const planted28 = (seed: number): Planted => {
  if (!fixtures.has(seed)) fixtures.set(seed, plantBackdoor({ seed, size: 28 }));
  return fixtures.get(seed)!;
};

test('the anomaly index is |x - median| / (1.4826 MAD), flagged only on the low side above the threshold', () => {
  const norms = [10, 40, 42, 38, 45, 60, 39, 41, 44, 43];
  // by hand: median 41.5; |x - 41.5| = 31.5 1.5 0.5 3.5 3.5 18.5 2.5 0.5 2.5 1.5 -> median 2.5 -> MAD 3.7065
  const { index, flagged } = anomalyIndices(norms, 2);
  norms.forEach((x, i) => assert.ok(Math.abs(index[i] - Math.abs(x - 41.5) / 3.7065) < 1e-9, `class ${i}`));
  assert.deepEqual(flagged.map((f, i) => (f ? i : -1)).filter((i) => i >= 0), [0], 'class 5 is as far out, but on the high side');
  assert.ok(index[5] > 2);
  // median 20.5, MAD 1.4826 * 1: class 0 at 10.4
  const never = anomalyIndices([5, 20, 20, 21, 22, Infinity], 2);
  assert.ok(Math.abs(never.index[0] - 15.5 / 1.4826) < 1e-9);
  assert.equal(never.flagged[5], false, 'a class never reached is not a target');
  assert.equal(never.flagged[0], true);
});

test('the mask mixes the pattern in pixel by pixel: (1 - m) x + m p', () => {
  manualSeed(0);
  const x = rand([2, 3, 4, 4]), m = rand([1, 1, 4, 4]), p = rand([1, 3, 4, 4]);
  const out = applyMask(x, m, p).toList(), xs = x.toList(), ms = m.toList(), ps = p.toList();
  out.forEach((v, i) => {
    const pix = i % 16, ch = Math.floor(i / 16) % 3;
    assert.ok(Math.abs(v - ((1 - ms[pix]) * xs[i] + ms[pix] * ps[ch * 16 + pix])) < 1e-6, `element ${i}`);
  });
});

test('options: the published settings by default, errors name the option', () => {
  const o = neuralCleanseOptions();
  assert.deepEqual([o.lr, o.betas, o.initCost, o.batchSize, o.patience, o.costMultiplier, o.successThreshold, o.anomalyThreshold], [0.1, [0.5, 0.9], 1e-3, 32, 5, 2, 0.99, 2]);
  assert.ok(neuralCleanseOptions('cpu-short').epochs < NC_PUBLISHED.epochs);
  assert.throws(() => neuralCleanseOptions('default', { lr: -1 }), /option 'lr'/);
  assert.throws(() => neuralCleanseOptions('default', { stepz: 1 }), /unknown option\(s\) stepz/);
  assert.throws(() => neuralCleanseOptions('fast'), /unknown preset 'fast'/);
});

test('on a 28x28 planted fixture the target needs the smallest mask, by a margin, on every seed', () => {
  // 28x28 as the real MNIST-format data: on the 16x16 fixture the synthetic clean classes are reachable
  // with 7-15-pixel masks and the target's lead is thin (docs/fidelity.md). Short runs (the published
  // 1000 epochs with early stop take minutes per class on a CPU): the cost is set after one successful epoch.
  const o = neuralCleanseOptions('default', { epochs: 10, initCost: 0.01, patience: 1, earlyStop: false });
  const ratios: number[] = [], indices: number[] = [], onTrigger: number[] = [], successes: number[] = [];
  for (const seed of [1, 2, 3]) {
    const p = planted28(seed);
    const before = p.model.stateDict().get('linear.weight')!.toList();
    const r = withoutTestSet(() => neuralCleanse(p.model, p.data, o));
    assert.deepEqual(p.model.stateDict().get('linear.weight')!.toList(), before, 'the model is only read');
    const [t, ...others] = r.classes;
    const next = Math.min(...others.map((k) => k.maskL1));
    ratios.push(next / t.maskL1);
    indices.push(t.anomalyIndex);
    successes.push(t.success);
    // the trigger is the fixture's bottom-right 3x3 (reported, not asserted)
    let inside = 0;
    for (let i = 25; i < 28; i++) for (let j = 25; j < 28; j++) inside += t.mask[i * 28 + j];
    onTrigger.push(inside / t.maskL1);
  }
  process.stderr.write(`neural cleanse: next smallest / target mask L1 ${ratios.map((x) => x.toFixed(2)).join(' ')}; target anomaly index ${indices.map((x) => x.toFixed(2)).join(' ')}; share of the target mask on the trigger ${onTrigger.map((x) => x.toFixed(2)).join(' ')}; the target trigger's success ${successes.map((x) => x.toFixed(3)).join(' ')}\n`);
  // the reversed trigger works: 10 short epochs stop short of NC's 0.99 (0.943 on one seed with AVX2 kernels)
  successes.forEach((x, i) => assert.ok(x > 0.9, `seed ${i + 1}: the reversed trigger works (${x})`));
  // observed (2026-12-07, the width-8 fixture's narrow shortcuts in NCHW): ratios 3.84 3.83 5.34, anomaly
  // index 2.87 1.89 2.97, success 0.990 1.000 0.993 (AVX-512); 4.77 3.43 10.74, 3.68 2.01 3.64, 0.973 0.977
  // 0.943 (ONEDNN_MAX_CPU_ISA=AVX2)
  assert.ok(Math.min(...ratios) > 1.2, `the target's mask is the smallest on every seed: ${ratios}`);
  assert.ok(median(ratios) > 2, `median ratio ${median(ratios)}`);
});

test('the class search finds the planted target by the smallest mask, and leaves the model as it was', () => {
  // 28x28 as Neural Cleanse's test above (on the 16x16 fixture the synthetic classes are reachable with small masks too)
  const p = planted28(2);
  const before = p.model.stateDict().get('linear.weight')!.toList();
  // the verdict's search (trigger-search.ts), from the defender's data only
  const found = withoutTestSet(() => classSearch(p.model, { ...p.data, train: p.clean }, { ...VERDICT_DEFAULTS, steps: 60 }));
  assert.deepEqual(p.model.stateDict().get('linear.weight')!.toList(), before, 'the model is only read');
  const masks = found.masks.map((x) => x.toFixed(1)).join(' ');
  assert.equal(found.suspect, 0, `masks ${masks}`);
  assert.ok(found.successes[0] > 0.8, `the found trigger works (${found.successes[0]})`);
  // the planted trigger is 3x3: its mask is a few pixels, the synthetic classes need several times more
  assert.ok(Math.min(...found.masks.slice(1)) > 2 * found.masks[0], `masks ${masks}`);
  assert.equal(found.flagged, true, `anomaly index ${found.anomalyIndex}`);
  // on the backdoored model the verdict names the target
  const v = verdictOf(found, found);
  assert.equal(v.backdoorLikely, true, verdictLine(v));
  assert.match(verdictLine(v), /likely remains, towards class 0/);
  // a class that stands out only after the purification is not the original's backdoor
  const other = { ...found, suspect: 3 };
  assert.equal(verdictOf(found, other).backdoorLikely, false);
  assert.match(verdictLine(verdictOf(found, other)), /not the original's class 0/);
  assert.equal(verdictOf(found, { ...found, flagged: false }).backdoorLikely, false);
  // when the original shows no anomaly (the search missed its target), any anomaly after counts
  assert.equal(verdictOf({ ...found, flagged: false }, other).backdoorLikely, true);
});
