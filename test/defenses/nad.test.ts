import { test } from 'node:test';
import * as assert from 'assert/strict';
import { randn, scope, tensor } from '../../src/torch';
import { fineTune, restore, snapshot } from '../../src/defenses/common';
import { attentionLoss, attentionMap, nad, NadOptions } from '../../src/defenses/nad';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { planted } from '../fixtures/planted';

const options = (o: Record<string, unknown> = {}): NadOptions => resolveOptions(defenseMethod('nad'), 'default', o) as unknown as NadOptions;

const close = (a: number[], b: number[], tol = 1e-6): void => {
  assert.equal(a.length, b.length);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= tol, `[${i}] ${v} vs ${b[i]}`));
};

test('NAD attention map: mean over channels of |a|^p, flattened per sample, L2-normalised', () => {
  scope(() => {
    // sample 0: channels [1, 2] and [-3, 0] over two positions; sample 1: all zero but one value
    const a = tensor([1, 2, -3, 0, 0, 0, 0, 4], [2, 2, 1, 2]);
    const s = Math.sqrt(29);
    close(attentionMap(a, 2).toList(), [5 / s, 2 / s, 0, 1]); // p = 2: (1 + 9) / 2 = 5, (4 + 0) / 2 = 2
    close(attentionMap(a, 1).toList(), [2 / Math.sqrt(5), 1 / Math.sqrt(5), 0, 1]); // p = 1: 2, 1
    assert.deepEqual(attentionMap(a, 2).shape, [2, 2]);
  });
});

test('NAD attention loss is 0 for identical feature maps and the mean squared map difference otherwise', () => {
  scope(() => {
    const f = randn([3, 4, 5, 5]);
    assert.equal(attentionLoss(attentionMap(f, 2), attentionMap(f.clone(), 2)).item(), 0);
    // a feature map scaled per sample has the same (normalised) attention map
    assert.ok(attentionLoss(attentionMap(f, 2), attentionMap(f.mul(7), 2)).item() < 1e-12);
    const g = randn([3, 4, 5, 5]);
    const as = attentionMap(f, 2), at = attentionMap(g, 2);
    const d = as.sub(at).toList();
    assert.ok(Math.abs(attentionLoss(as, at).item() - d.reduce((x, v) => x + v * v, 0) / d.length) < 1e-7);
  });
});

test('NAD with zero betas is plain fine-tuning from the original weights (the teacher does not leak into the student)', () => {
  const p = planted();
  const data = p.data;
  const original = snapshot(p.model);
  const o = options({ epochs: 2, teacherEpochs: 3, batchSize: 32, betas: [0, 0, 0] });
  const r = nad(p.model, data, o);
  assert.ok(r.teacherValAcc >= 0 && r.teacherValAcc <= 1);
  const viaNad = snapshot(p.model);
  restore(p.model, original);
  fineTune(p.model, data.train, data.norm, o);
  for (const [k, v] of p.model.stateDict()) assert.deepEqual(v.toList(), viaNad.get(k)!.toList(), k);
  assert.throws(() => nad(p.model, data, options({ betas: [1, 2] })), /nad: 3 layers but 2 betas/);
  assert.throws(() => nad(p.model, data, options({ layers: ['layer9'], betas: [1] })), /no submodule 'layer9'/);
});

// whether it removes the backdoor that fine-tuning keeps: efficacy.test.ts
