import { test } from 'node:test';
import * as assert from 'assert/strict';
import { nn, noGrad, scope } from '../../src/torch';
import { withoutTestSet } from '../../src/data/datasets';
import { disposeState, restore, snapshot } from '../../src/defenses/common';
import { finePruning, FinePruningOptions, pruneDormant } from '../../src/defenses/fine-pruning';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { normalize } from '../../src/train/loop';
import { planted } from '../fixtures/planted';

const options = (o: Record<string, unknown> = {}): FinePruningOptions =>
  resolveOptions(defenseMethod('fine-pruning'), 'default', o) as unknown as FinePruningOptions;

const column = (w: number[], rows: number, cols: number, c: number): number[] => Array.from({ length: rows }, (_, r) => w[r * cols + c]);

test('fine-pruning ranks the last block output by mean clean activation, prunes the lowest first, stops at the tolerance', () => {
  const p = planted();
  const data = p.data;
  // the reference: mean of layer4's output (after the residual add and ReLU) over images and positions
  const sums = new Float64Array(64);
  let count = 0;
  const hook = p.model.getModule('layer4').registerForwardHook((_m, _i, out) => {
    noGrad(() => scope(() => { out.sum([0, 2, 3]).toList().forEach((v, c) => { sums[c] += v; }); count += out.size(0) * out.size(2) * out.size(3); }));
  });
  p.model.eval();
  noGrad(() => scope(() => { p.model.call(normalize(data.train.images, data.norm)); }));
  hook.remove();
  const ref = Array.from(sums, (s) => s / count);
  const lin = p.model.getModule('linear') as nn.Linear;
  const w0 = lin.weight.toList();

  const o = options();
  const r = pruneDormant(p.model, data, o);
  assert.equal(r.target.name, 'linear (input)');
  r.means.forEach((m, c) => assert.ok(Math.abs(m - ref[c]) <= 1e-5 * (1 + Math.abs(ref[c])), `channel ${c}: ${m} vs ${ref[c]}`));
  for (let i = 1; i < 64; i++) assert.ok(ref[r.order[i - 1]] <= ref[r.order[i]] + 1e-6, 'order: least active first');
  const k = r.pruned.length;
  assert.ok(k > 0, 'something is pruned on the fixture');
  assert.deepEqual(r.pruned, r.order.slice(0, k).sort((a, b) => a - b));
  // one channel per step (1% of 64 rounds to 1); every kept step within the tolerance, the next one not
  assert.deepEqual(r.steps.map((s) => s.pruned), Array.from({ length: r.steps.length }, (_, i) => i + 1));
  for (const s of r.steps.slice(0, k)) assert.ok(s.valAcc >= r.valAccBefore - o.tolerance);
  if (r.steps.length > k) assert.ok(r.steps[k].valAcc < r.valAccBefore - o.tolerance, 'stopped at the first step outside the tolerance');
  // baked in: the pruned channels' weight columns are zero, the others untouched
  const w = lin.weight.toList();
  for (let c = 0; c < 64; c++) {
    const col = column(w, 10, 64, c);
    if (r.pruned.includes(c)) assert.ok(col.every((v) => v === 0), `channel ${c} zeroed`);
    else assert.deepEqual(col, column(w0, 10, 64, c));
  }
});

// how well it removes the backdoor: efficacy.test.ts
test('fine-pruning: the pruning stage, then fine-tuning that keeps the pruned channels at zero in the state dict', () => {
  const p = planted();
  const data = p.data;
  const original = snapshot(p.model);
  const pr = withoutTestSet(() => pruneDormant(p.model, data, options()));
  restore(p.model, original);
  const wBefore = original.get('linear.weight')!.toList();
  disposeState(original);

  const r = withoutTestSet(() => finePruning(p.model, data, options({ batchSize: 32 })));
  assert.deepEqual(r.pruned, pr.pruned, 'the same ranking and stop from the same weights');
  assert.equal(r.pruneRatio, r.pruned.length / 64);
  assert.equal(r.valAccPruned, pr.valAccPruned);
  const w = p.model.stateDict().get('linear.weight')!.toList();
  for (const c of r.pruned) assert.ok(column(w, 10, 64, c).every((v) => v === 0), `channel ${c} still zero after fine-tuning`);
  const kept = [...Array(64).keys()].filter((c) => !r.pruned.includes(c));
  assert.ok(kept.every((c) => column(w, 10, 64, c).some((v, i) => v !== column(wBefore, 10, 64, c)[i])), 'the other channels were fine-tuned');
});

test("fine-pruning layer 'last-conv' bakes the pruning into the last BN's weight and bias", () => {
  const p = planted();
  const data = p.data;
  const r = finePruning(p.model, data, options({ layer: 'last-conv', epochs: 2, batchSize: 32 }));
  process.stderr.write(`fine-pruning last-conv: ${r.pruned.length}/64 pruned\n`);
  assert.equal(r.layer, 'layer4.1.bn2');
  assert.ok(r.pruned.length > 0);
  const sd = p.model.stateDict();
  for (const k of ['layer4.1.bn2.weight', 'layer4.1.bn2.bias']) {
    const v = sd.get(k)!.toList();
    for (const c of r.pruned) assert.ok(v[c] === 0, `${k}[${c}] = ${v[c]}`);
  }
});

test('fine-pruning options are validated', () => {
  const m = defenseMethod('fine-pruning');
  assert.throws(() => resolveOptions(m, 'default', { layer: 'first' }), /option 'layer' must be one of 'features', 'last-conv'/);
  assert.throws(() => resolveOptions(m, 'default', { stepFraction: 0 }), /stepFraction/);
  assert.throws(() => resolveOptions(m, 'default', { ratio: 0.1 }), /unknown option\(s\) 'ratio'/);
});
