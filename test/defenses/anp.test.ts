import { test } from 'node:test';
import * as assert from 'assert/strict';
import { F, manualSeed, noGrad, scope, Tensor, zeros } from '../../src/torch';
import { accuracyOn, disposeState, restore, snapshot } from '../../src/defenses/common';
import { anp, AnpOptions, AnpState, chooseThreshold, learnMasks, perturb, pruneBelow } from '../../src/defenses/anp';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { withoutTestSet } from '../../src/data/datasets';
import { normalize } from '../../src/train/loop';
import { Rng } from '../../src/util/rng';
import { planted, PLANTED_NORM } from '../fixtures/planted';

const p = planted();
const original = snapshot(p.model);
const data = p.data;
const { train, val } = data;
const options = (o: Record<string, unknown> = {}): AnpOptions => resolveOptions(defenseMethod('anp'), 'default', o) as unknown as AnpOptions;
const sameState = (a: Map<string, Tensor>, b: Map<string, Tensor>): boolean =>
  [...a].every(([k, t]) => scope(() => t.sub(b.get(k)!).abs().amax().item()) === 0);

test('one signed ascent step of eps from the start, unprojected as the official code; no gradient left behind', () => {
  restore(p.model, original);
  const params = p.model.parameters();
  for (const t of params) t.requiresGrad_(false);
  p.model.eval();
  const x = normalize(train.images.narrow(0, 0, 64), PLANTED_NORM), y = train.labels.narrow(0, 0, 64);
  const loss = (): number => noGrad(() => scope(() => F.crossEntropy(p.model.call(x), y).item()));
  // without the ANP state, eval-mode inference folds each BN into its conv (nn.convBn)
  const folded = loss();
  const s = new AnpState(p.model);
  s.perturbed = true;
  const clean = loss();
  // with it, each BN runs on its own (unfolded): the same function on another kernel path, equal to the
  // last bit on AMD AVX-512 and with AVX2, not on Intel AVX-512 (issue 26); so compared with a tolerance
  assert.ok(Math.abs(clean - folded) <= 1e-3 * folded, `zero noise, unit masks: the original function (${folded} vs ${clean})`);
  perturb(s, x, y, 0.4, 1, false);
  const ascended = loss();
  assert.ok(ascended > clean + 0.01, `loss ${clean} -> ${ascended}`);
  const noise = s.noises.flatMap((t) => t.toList());
  assert.ok(noise.every((v) => v === 0 || Math.abs(Math.abs(v) - 0.4) < 1e-6), 'from zero, one step is 0 or +-eps exactly');
  assert.ok(noise.filter((v) => v !== 0).length > 0.9 * noise.length, 'from zero, one step of eps reaches the boundary');
  // the random start, drawn as perturb draws it (the same generator state, the same shapes in order)
  manualSeed(7);
  const starts = s.noises.map((t) => noGrad(() => zeros(t.shape).uniform_(-0.4, 0.4)));
  manualSeed(7);
  perturb(s, x, y, 0.4, 1, true);
  const start = starts.flatMap((t) => t.toList()), after = s.noises.flatMap((t) => t.toList());
  assert.ok(start.every((v) => Math.abs(v) <= 0.4), 'the start lies in [-eps, eps]');
  const steps = after.map((v, i) => v - start[i]);
  assert.ok(steps.every((d) => Math.abs(d) < 1e-6 || Math.abs(Math.abs(d) - 0.4) < 1e-6), 'the step is 0 or +-eps from the start');
  const beyond = after.filter((v) => Math.abs(v) > 0.4 + 1e-3).length;
  // half of the starts point the way of their step, so about a quarter of the values land past eps
  assert.ok(beyond > 0.1 * after.length, `not projected back: ${beyond} of ${after.length} beyond eps`);
  assert.ok(after.every((v) => Math.abs(v) <= 0.8 + 1e-6), 'within 2 eps');
  assert.ok(loss() > clean);
  assert.ok([...s.masks, ...s.noises].every((t) => t.grad === null));
  for (const t of starts) t.dispose();
  s.remove();
  for (const t of params) t.requiresGrad_(true);
  s.perturbed = false;
  assert.equal(loss(), folded, 'the BN forward is the original again: folded as before, the same computation to the bit');
});

test('mask learning keeps masks in [0, 1] and leaves every weight and buffer of the model as it was', () => {
  restore(p.model, original);
  const before = snapshot(p.model);
  const r = learnMasks(p.model, train, PLANTED_NORM, options({ iterations: 20, batchSize: 64 }));
  assert.equal(r.iterations, 20);
  assert.equal(r.layers.length, 20, 'every BN of ResNet-18 (17 conv BNs + 3 shortcut BNs)');
  const all = r.masks.flatMap((m) => Array.from(m));
  assert.ok(all.every((m) => m >= 0 && m <= 1));
  assert.ok(all.some((m) => m < 0.9), 'some masks moved');
  assert.ok(sameState(before, snapshot(p.model)), 'BN weights, biases and running statistics untouched');
  assert.ok(p.model.parameters().every((t) => t.requiresGrad));
  disposeState(before);
  assert.equal(learnMasks(p.model, train, PLANTED_NORM, options({ epochs: 3, batchSize: 50 })).iterations, 3 * Math.ceil(train.labels.numel / 50));
});

function syntheticMasks(seed: number): { layers: ReturnType<typeof learnMasks>['layers']; masks: Float32Array[] } {
  const s = new AnpState(p.model);
  const layers = s.layers.map(({ name, bn }) => ({ name, bn }));
  s.remove();
  const rng = new Rng(seed);
  return { layers, masks: layers.map((l) => Float32Array.from({ length: l.bn.numFeatures }, () => Math.fround(rng.next()))) };
}

test('pruning zeroes the BN weight (not the bias, as the official pruning()) of exactly the neurons below the threshold', () => {
  restore(p.model, original);
  const { layers, masks } = syntheticMasks(3);
  const before = layers.map((l) => [l.bn.weight.toList(), l.bn.bias.toList()]);
  const pruned = pruneBelow(layers, masks, 0.3);
  layers.forEach((l, i) => {
    const w = l.bn.weight.toList(), b = l.bn.bias.toList();
    const expected = Array.from(masks[i]).flatMap((m, c) => (m < 0.3 ? [c] : []));
    assert.deepEqual(pruned[l.name] ?? [], expected);
    masks[i].forEach((m, c) => {
      assert.ok(b[c] === before[i][1][c], `${l.name}[${c}] bias kept`);
      if (m < 0.3) assert.ok(w[c] === 0, `${l.name}[${c}] weight zeroed`);
      else assert.ok(w[c] === before[i][0][c], `${l.name}[${c}] weight kept`);
    });
  });
});

test('the threshold is chosen on the validation data alone: the largest before accuracy first drops', () => {
  restore(p.model, original);
  const { layers, masks } = syntheticMasks(5);
  const thresholds = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5];
  const r = withoutTestSet(() => chooseThreshold(p.model, layers, masks, val, PLANTED_NORM, thresholds, 0.02));
  assert.ok(sameState(original, snapshot(p.model)), 'the model is left unpruned');
  assert.equal(r.valAccBefore, accuracyOn(p.model, val, PLANTED_NORM));
  for (const e of r.sweep) {
    const pr = pruneBelow(layers, masks, e.threshold);
    assert.equal(e.pruned, Object.values(pr).reduce((a, x) => a + x.length, 0));
    assert.equal(e.valAcc, accuracyOn(p.model, val, PLANTED_NORM), `validation accuracy at ${e.threshold}`);
    restore(p.model, original);
  }
  // the rule, against the sweep it measured: stop at the first threshold outside the tolerance
  const firstBad = r.sweep.findIndex((e) => e.valAcc < r.valAccBefore - 0.02);
  assert.ok(firstBad > 0, `pruning half of the neurons at random must hurt, a handful must not: ${JSON.stringify(r.sweep)}`);
  assert.equal(r.sweep.length, firstBad + 1, 'the sweep stops at the first drop');
  assert.equal(r.threshold, r.sweep[firstBad - 1].threshold);
});

test('ANP bakes the chosen pruning into the BN weights, within the validation tolerance', () => {
  restore(p.model, original);
  const r = withoutTestSet(() => anp(p.model, data, options({ iterations: 20 })));
  const chosen = r.sweep.find((e) => e.threshold === r.threshold) ?? { pruned: 0, valAcc: r.valAccBefore }; // threshold 0: nothing pruned
  assert.equal(r.valAccAfter, chosen.valAcc);
  assert.ok(r.valAccAfter >= r.valAccBefore - 0.02);
  assert.equal(r.prunedTotal, chosen.pruned);
  for (const [name, idx] of Object.entries(r.pruned)) {
    const bn = p.model.getModule(name) as unknown as { weight: Tensor; bias: Tensor };
    const w = bn.weight.toList(), b = bn.bias.toList(), b0 = original.get(`${name}.bias`)!.toList();
    for (const c of idx) assert.ok(w[c] === 0 && b[c] === b0[c], `${name}[${c}]: weight zeroed, bias kept`);
    assert.deepEqual(idx, r.masks[name].flatMap((m, c) => (m < r.threshold ? [c] : [])));
  }
});
