import { test } from 'node:test';
import * as assert from 'assert/strict';
import { manualSeed, noGrad, randn, Tensor, tensor } from '../../src/torch';
import { distillLoss, softTargetLoss, softTargets } from '../../src/defenses/common';
import { ResNet18 } from '../../src/models/resnet';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { lastUnits } from '../../src/defenses/selection';
import { channelIndex, dilated, penalizableTogether, penalizedTogether, penaltyOf, occluded, stampBlocks, togetherIndex, varDefense, VarDefenseOptions } from '../../src/defenses/vardefense';
import { Rng } from '../../src/util/rng';
import { evaluate, planted } from '../fixtures/planted';
import { withoutTestSet } from '../../src/data/datasets';

const options = (preset: string, o: Record<string, unknown> = {}): VarDefenseOptions =>
  resolveOptions(defenseMethod('vardefense'), preset, o) as unknown as VarDefenseOptions;

test('the penalty reaches only the selected channels of the unit, and BN only when asked', () => {
  manualSeed(0);
  const m = new ResNet18({ width: 4, inChannels: 1 });
  const [u] = lastUnits(m, 1);
  noGrad(() => { u.bn!.weight.uniform_(0.5, 1.5); u.bn!.bias.uniform_(-1, 1); });
  for (const penalize of ['bn', 'conv+bn'] as const) {
    m.zeroGrad();
    penaltyOf(u, [1, 3], { penalize, penalty: 'group-l2' })!.backward();
    const touched = (g: number[], rowLen: number): number[] => [...new Set(g.flatMap((v, i) => (v !== 0 ? [Math.floor(i / rowLen)] : [])))];
    assert.deepEqual(touched(u.bn!.weight.grad!.toList(), 1), [1, 3]);
    assert.deepEqual(touched(u.bn!.bias.grad!.toList(), 1), [1, 3]);
    if (penalize === 'bn') assert.equal(u.conv.weight.grad, null, 'conv filters untouched');
    else assert.deepEqual(touched(u.conv.weight.grad!.flatten().toList(), u.conv.weight.numel / u.conv.outChannels), [1, 3]);
    const earlier = m.namedParameters().filter(([n]) => !n.startsWith('layer4.1.'));
    assert.ok(earlier.every(([, p]) => p.grad === null), 'no gradient on any other layer');
  }
  m.dispose();
});

test('the penalty of all units taken together has the gradients of the per-unit penalties, bit for bit', () => {
  manualSeed(2);
  const m = new ResNet18({ width: 4, inChannels: 1 });
  const units = lastUnits(m, 5);
  noGrad(() => { for (const u of units) { u.bn!.weight.uniform_(-1.5, 1.5); u.bn!.bias.uniform_(-1, 1); } });
  const selection = units.map((u, i) => (i === 2 ? [] : [0, 2, u.conv.outChannels - 1].slice(0, 1 + (i % 3))));
  // a unit without a selected channel gets no gradient from the per-unit terms, zeros from the gathered one
  const grads = (): number[][] => units.flatMap((u) => [u.bn!.weight, u.bn!.bias].map((t) => (t.grad?.toList() as number[] | undefined) ?? new Array<number>(t.numel).fill(0)));
  assert.ok(penalizableTogether(units, { penalize: 'bn' }) && !penalizableTogether(units, { penalize: 'conv+bn' }));
  for (const penalty of ['l1', 'group-l2'] as const) {
    m.zeroGrad();
    let sum: Tensor | null = null;
    units.forEach((u, i) => { const p = penaltyOf(u, selection[i], { penalize: 'bn', penalty }, selection[i].length ? channelIndex(selection[i], u.conv.weight) : undefined); if (p) sum = sum ? sum.add(p) : p; });
    const perUnitValue = sum!.item();
    sum!.mul(0.3).backward();
    const perUnit = grads();
    m.zeroGrad();
    const together = penalizedTogether(units, togetherIndex(units, selection)!, penalty);
    assert.ok(Math.abs(together.item() - perUnitValue) < 1e-5 * perUnitValue, `${penalty}: ${together.item()} vs ${perUnitValue}`);
    together.mul(0.3).backward();
    // two computations of one gradient (per unit, and over the units' concatenated slices): equal up to
    // the reduction order of each norm, which the kernels choose by instruction set
    const tog = grads(), scale = Math.max(...perUnit.flat().map(Math.abs));
    const worst = Math.max(...tog.flatMap((g, i) => g.map((v, j) => Math.abs(v - perUnit[i][j]))));
    assert.ok(worst <= 1e-6 * scale, `${penalty}: gradients differ by ${worst} (largest ${scale})`);
    assert.ok(perUnit.flat().some((g) => g !== 0));
  }
  assert.equal(togetherIndex(units, units.map(() => [])), null);
  m.dispose();
});

test('distillation from soft targets has the gradients of distillLoss, bit for bit', () => {
  manualSeed(4);
  const teacher = randn([6, 10]).mul(3);
  for (const weight of [1, 0.7]) {
    const grad = (loss: (s: Tensor) => Tensor): number[] => {
      const s = randn([6, 10]).mul(2).requiresGrad_(true);
      loss(s).backward();
      return s.grad!.toList() as number[];
    };
    manualSeed(5);
    const kl = grad((s) => distillLoss(s, teacher, 2).mul(weight));
    manualSeed(5);
    const soft = grad((s) => softTargetLoss(s, softTargets(teacher, 2), 2, weight));
    assert.deepEqual(soft, kl, `weight ${weight}`);
    assert.ok(kl.some((g) => Math.abs(g) > 1e-3));
  }
});

test('selection stays in the last L layers and the threshold rises per epoch or per iteration', () => {
  const p = planted();
  const { train } = p.data;
  for (const step of ['epoch', 'iteration'] as const) {
    const o = options('paper', { layers: 3, epochs: 3, batchSize: 40, thresholdStep: step, startFraction: 0.1, maxFraction: 0.4 });
    const r = varDefense(p.model, p.data, o);
    assert.deepEqual(r.layers, ['layer4.0.shortcut.0', 'layer4.1.conv1', 'layer4.1.conv2']);
    assert.deepEqual(r.perLayer.map((l) => l.name), r.layers);
    const steps = step === 'epoch' ? 3 : 3 * Math.ceil(train.labels.numel / 40);
    assert.equal(r.thresholds.length, steps);
    assert.ok(Math.abs(r.thresholds[0] - 0.1) < 1e-12 && Math.abs(r.thresholds[steps - 1] - 0.4) < 1e-12);
    for (let i = 1; i < steps; i++) assert.ok(r.thresholds[i] >= r.thresholds[i - 1]);
    for (const l of r.perLayer) {
      assert.equal(l.selected.length, Math.round(0.4 * l.channels), `${l.name}: 40% of its channels at the end`);
      assert.equal(l.thresholdValues.length, steps);
    }
  }
});

// whether it removes the backdoor that fine-tuning keeps: efficacy.test.ts

test('lambda auto keeps the largest candidate whose validation accuracy holds', () => {
  const p = planted();
  const o = options('paper', { lambda: 'auto', lambdaCandidates: [1e-3, 1e6], lambdaTolerance: 0.02, lambdaTrialEpochs: 1, epochs: 1, batchSize: 32, layers: 10, penalize: 'bn' });
  const r = varDefense(p.model, p.data, o);
  assert.deepEqual(r.lambdaTrials.map((t) => t.lambda), [0, 1e-3, 1e6], 'a lambda-0 reference, then the candidates');
  const [reference, small, huge] = r.lambdaTrials;
  assert.ok(small.valAcc >= reference.valAcc - 0.02, 'a tiny lambda keeps the accuracy');
  assert.ok(huge.valAcc < reference.valAcc - 0.02, `lambda 1e6 wrecks it (${huge.valAcc})`);
  assert.equal(r.lambda, 1e-3);
});

test('options are validated with errors that name the option and the allowed values', () => {
  const vd = defenseMethod('vardefense');
  assert.throws(() => resolveOptions(vd, 'default', { metric: 'median' }), /option 'metric' must be one of 'variance', 'entropy', 'mean', 'weight', 'random', got 'median'/);
  assert.throws(() => resolveOptions(vd, 'default', { lamda: 1 }), /unknown option\(s\) 'lamda'/);
  assert.throws(() => resolveOptions(vd, 'nope'), /unknown preset 'nope' \(known: /);
  assert.throws(() => defenseMethod('magic'), /unknown defense 'magic' \(known: vardefense, ft/);
  assert.equal(resolveOptions(vd, 'paper', { lambda: 'auto' }).lambda, 'auto');
  assert.throws(() => resolveOptions(vd, 'paper', { lambda: 'big' }), /option 'lambda': expected a number >= 0 or 'auto'/);
});

test('robust: the class search names the planted target and its unlearning lowers the ASR the default leaves', () => {
  // the 16x16 fixture, 150 clean training images: the default leaves the backdoor whole (ASR 1.00 here),
  // robust's search finds class 0 with the smallest mask and its unlearning halves the ASR (0.51 here)
  const p = planted(1);
  const base = withoutTestSet(() => varDefense(p.model, p.data, options('bn-distill-eval')));
  assert.equal(base.search, undefined, 'no search without unlearn');
  const asrBase = evaluate(p).asr!;
  const q = planted(1);
  const r = withoutTestSet(() => varDefense(q.model, q.data, options('robust')));
  const after = evaluate(q);
  assert.equal(r.search!.suspect, 0, `masks ${r.search!.triggers.map((t) => t.maskL1.toFixed(1)).join(' ')}`);
  assert.equal(r.search!.triggers.length, 10);
  assert.ok(asrBase > 0.9, `the default leaves the fixture's backdoor (${asrBase})`);
  assert.ok(after.asr! < 0.8, `robust lowers it (${after.asr})`);
  assert.ok(after.acc > 0.95, `clean accuracy holds (${after.acc})`);
});

test('featureShift re-initialises the head and keeps its norm; the adversarial rows replace rows of the batch', () => {
  const p = planted(1);
  const head = (): number[] => p.model.stateDict().get('linear.weight')!.toList();
  const w0 = head();
  const norm = (w: number[]): number => Math.sqrt(w.reduce((a, v) => a + v * v, 0));
  withoutTestSet(() => varDefense(p.model, p.data, options('bn-distill-eval', { epochs: 1, featureShift: 0.2 })));
  const w1 = head();
  assert.ok(Math.abs(norm(w1) - norm(w0)) < 1e-4 * norm(w0), `||W|| ${norm(w1)} against ${norm(w0)}`);
  const cos = w0.reduce((a, v, i) => a + v * w1[i], 0) / (norm(w0) * norm(w1));
  assert.ok(cos < 0.5, `the head turned away from the original (cosine ${cos})`);
  const q = planted(1);
  const r = withoutTestSet(() => varDefense(q.model, q.data, options('bn-distill-eval', { epochs: 1, adversarialFraction: 0.3, adversarialEps: 0.1, adversarialSteps: 2 })));
  assert.equal(r.adversarial!.eps, 0.1);
  assert.equal(r.adversarial!.flips.images, q.data.train.labels.numel);
});

test('stamp blocks: even by default; with weights the suspects take their share of the stamped rows', () => {
  const size = ([a, b]: [number, number]): number => b - a;
  const even = stampBlocks(19, 10);
  // rows floor(19 j / 10): 0, 1, 3, 5, ..., 19
  assert.deepEqual(even.map(size), [1, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
  const weighted = stampBlocks(38, 20, Array.from({ length: 20 }, (_, j) => 0.5 / 20 + (j === 3 || j === 15 ? 0.25 : 0)));
  for (const blocks of [even, weighted]) {
    assert.equal(blocks[0][0], 0);
    blocks.forEach(([a, b], j) => { assert.ok(b >= a); if (j > 0) assert.equal(a, blocks[j - 1][1], 'contiguous'); });
  }
  assert.equal(weighted[19][1], 38, 'every stamped row has a trigger');
  assert.ok(size(weighted[3]) >= 10 && size(weighted[15]) >= 10, `suspects' blocks ${size(weighted[3])} and ${size(weighted[15])} of 38 rows`);
  assert.ok(weighted.every((b, j) => j === 3 || j === 15 || size(b) <= 2), 'the others about one row each');
});

test('robust with a black-start search, continued searches and the suspects\' share: both searches reported, the backdoor lowered', () => {
  const p = planted(1);
  const lines: string[] = [];
  const o = options('robust', { searchStarts: ['random', 'black'], researchSteps: 3, suspectShare: 0.5, stampFraction: 0.3 });
  const r = withoutTestSet(() => varDefense(p.model, p.data, o, { log: (l) => lines.push(l) }));
  const after = evaluate(p);
  assert.equal(r.search!.triggers.length, 10);
  assert.equal(r.searches!.length, 1);
  assert.equal(r.searches![0].start, 'black');
  assert.equal(r.searches![0].triggers.length, 10);
  // each of the two searches continues at the start of every epoch after the first
  assert.equal(lines.filter((l) => /search \d continued 3 steps/.test(l)).length, 2 * (o.epochs - 1));
  assert.equal(r.search!.suspect, 0, `masks ${r.search!.triggers.map((t) => t.maskL1.toFixed(1)).join(' ')}`);
  // the suspects' share goes to each search's suspect
  const shareLine = (ls: string[]): string => ls.find((l) => l.includes('of the stamped rows to the suspect'))!;
  assert.equal((shareLine(lines).match(/class \d+ of search/g) ?? []).length, 2, shareLine(lines));
  assert.ok(after.asr! < 0.8, `the backdoor lowered (${after.asr})`);
  assert.ok(after.acc > 0.95, `clean accuracy holds (${after.acc})`);
  // or only to the suspect of the largest anomaly index
  const q = planted(1);
  const most: string[] = [];
  const rq = withoutTestSet(() => varDefense(q.model, q.data, options('robust', { epochs: 1, searchSteps: 5, searchStarts: ['random', 'black'], suspectShare: 0.5, suspectRule: 'most-anomalous' }), { log: (l) => most.push(l) }));
  const named = shareLine(most).match(/class (\d+) of search (\d)/g) ?? [];
  assert.equal(named.length, 1, shareLine(most));
  const [, cls, search] = /class (\d+) of search (\d)/.exec(named[0])!.map(Number);
  const searched = [rq.search!, rq.searches![0]];
  const largest = Math.max(...searched.map((x) => x.triggers[x.suspect].anomalyIndex));
  assert.equal(searched[search - 1].suspect, cls);
  assert.equal(searched[search - 1].triggers[cls].anomalyIndex, largest);
  const vd = defenseMethod('vardefense');
  assert.throws(() => varDefense(p.model, p.data, resolveOptions(vd, 'bn-distill-eval', { researchSteps: 2 }) as unknown as VarDefenseOptions), /option 'researchSteps' \(2\) needs unlearn='all'/);
  assert.throws(() => varDefense(p.model, p.data, resolveOptions(vd, 'bn-distill-eval', { searchStarts: ['black'] }) as unknown as VarDefenseOptions), /option 'searchStarts' needs a search/);
});

test('a grown mask: each pixel takes the largest value within r pixels (a square), clipped at the border', () => {
  const side = 9, m = new Float32Array(side * side);
  m[4 * side + 4] = 0.8; // the centre
  m[0 * side + 8] = 0.3; // the top-right corner
  m[5 * side + 5] = 0.5; // beside the centre, smaller
  const g = dilated(tensor(m, [1, 1, side, side]), 2);
  assert.deepEqual(g.shape, [1, 1, side, side]);
  const y = g.toArray() as Float32Array;
  const want = (r: number, c: number): number => Math.max(0, ...[[4, 4, 0.8], [0, 8, 0.3], [5, 5, 0.5]].map(([pr, pc, v]) => (Math.abs(r - pr) <= 2 && Math.abs(c - pc) <= 2 ? v : 0)));
  for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) assert.ok(Math.abs(y[r * side + c] - want(r, c)) < 1e-6, `(${r}, ${c}): ${y[r * side + c]} vs ${want(r, c)}`);
  // the centre's 25, the 0.5 square's 9 outside them, the corner's clipped 3x3 but the cell (2, 6) it shares
  assert.equal(Array.from(y).filter((v) => v > 0).length, 25 + 9 + 8);
  g.dispose();
  const vd = defenseMethod('vardefense');
  const p = planted(1);
  assert.throws(() => varDefense(p.model, p.data, resolveOptions(vd, 'bn-distill-eval', { stampDilate: 2 }) as unknown as VarDefenseOptions), /option 'stampDilate' \(2\) needs a search/);
  assert.throws(() => varDefense(p.model, p.data, resolveOptions(vd, 'robust', { stampDilate: 1, researchSteps: 2 }) as unknown as VarDefenseOptions), /'stampDilate' and 'researchSteps' do not combine/);
});

test('occlusion: each image gets one square of side 3 to a quarter of the image, one grey level or binary noise, the rest untouched', () => {
  const n = 200, side = 28;
  // a constant image of 0.3, not a value the squares take when they are noise (0 or 1)
  const x = randn([n, 1, side, side]).mul(0).add(0.3);
  const y = occluded(x, new Rng(4)).toArray() as Float32Array;
  const sides = new Set<number>();
  let noise = 0;
  for (let i = 0; i < n; i++) {
    const changed: [number, number, number][] = [];
    for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) { const v = y[(i * side + r) * side + c]; if (Math.abs(v - 0.3) > 1e-6) changed.push([r, c, v]); }
    const rows = changed.map(([r]) => r), cols = changed.map(([, c]) => c);
    const k = Math.max(...rows) - Math.min(...rows) + 1;
    assert.ok(k >= 3 && k <= 7 && Math.max(...cols) - Math.min(...cols) + 1 <= k, `image ${i}: a square of side ${k}`);
    sides.add(k);
    if (changed.every(([, , v]) => v === 0 || v === 1) && new Set(changed.map(([, , v]) => v)).size === 2) noise++;
  }
  assert.deepEqual([...sides].sort(), [3, 4, 5, 6, 7], 'every side drawn');
  assert.ok(noise > n / 4 && noise < (3 * n) / 4, `about half binary noise (${noise} of ${n})`);
  x.dispose();
});
