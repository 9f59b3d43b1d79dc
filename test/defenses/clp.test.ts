import { test } from 'node:test';
import * as assert from 'assert/strict';
import { manualSeed, nn, noGrad, scope, tensor, zeros } from '../../src/torch';
import { ResNet18 } from '../../src/models/resnet';
import { ImageSet } from '../../src/data/datasets';
import { clp, clpScores, ClpOptions, outliers } from '../../src/defenses/clp';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { PLANTED_NORM } from '../fixtures/planted';

const options = (o: Record<string, unknown> = {}): ClpOptions => resolveOptions(defenseMethod('clp'), 'default', o) as unknown as ClpOptions;

/** Largest singular value of a row-major [m, n] matrix by power iteration on A^T A. */
function sigmaMax(a: number[], m: number, n: number): number {
  let v = Array.from({ length: n }, (_, i) => 1 + i / n);
  let s = 0;
  for (let it = 0; it < 500; it++) {
    const av = Array.from({ length: m }, (_, r) => v.reduce((x, vj, j) => x + a[r * n + j] * vj, 0));
    const atav = Array.from({ length: n }, (_, j) => av.reduce((x, ar, r) => x + a[r * n + j] * ar, 0));
    const norm = Math.hypot(...atav);
    v = atav.map((x) => x / norm);
    s = Math.sqrt(norm);
  }
  return s;
}

test('CLP score: largest singular value of the [in, kh*kw] filter times |gamma| / sqrt(running_var + eps)', () => {
  // a known case: channel 0 filter diag(3, 4) (sigma 4), channel 1 all ones 2x2 (sigma 2)
  const conv = new nn.Conv2d(2, 2, [1, 2], { bias: false });
  const bn = new nn.BatchNorm2d(2);
  noGrad(() => {
    conv.weight.copy_(tensor([3, 0, 0, 4, 1, 1, 1, 1], [2, 2, 1, 2]));
    bn.weight.copy_(tensor([2, -1], [2]));
    bn.runningVar.copy_(tensor([4, 1], [2]));
  });
  const s = clpScores(conv, bn);
  assert.ok(Math.abs(s[0] - (4 * 2) / Math.sqrt(4 + 1e-5)) < 1e-5, `${s[0]}`);
  assert.ok(Math.abs(s[1] - 2 / Math.sqrt(1 + 1e-5)) < 1e-5, `${s[1]}`);

  // random 3x3 convolution against power iteration
  manualSeed(3);
  const c2 = new nn.Conv2d(5, 6, 3, { bias: false });
  const b2 = new nn.BatchNorm2d(6);
  noGrad(() => { b2.weight.uniform_(-2, 2); b2.runningVar.uniform_(0.1, 3); });
  const w = c2.weight.toList(), g = b2.weight.toList(), v = b2.runningVar.toList();
  const got = clpScores(c2, b2);
  for (let k = 0; k < 6; k++) {
    const ref = sigmaMax(w.slice(k * 45, (k + 1) * 45), 5, 9) * Math.abs(g[k]) / Math.sqrt(v[k] + 1e-5);
    assert.ok(Math.abs(got[k] - ref) < 1e-5 * (1 + ref), `channel ${k}: ${got[k]} vs ${ref}`);
  }
});

test('CLP threshold: scores above mean + u * std (unbiased), and nothing below', () => {
  const s = [1, 1, 1, 1, 1, 1, 1, 1, 1, 10]; // mean 1.9, std 2.846: threshold at u = 2 is 7.59
  assert.deepEqual(outliers(s, 2), [9]);
  assert.deepEqual(outliers(s, 3), []); // 1.9 + 3 * 2.846 = 10.44
  assert.deepEqual(outliers([5, 5, 5], 0), []);
});

test('CLP zeroes an injected high-Lipschitz channel and only it, without reading the training data', () => {
  manualSeed(5);
  const model = new ResNet18({ width: 8, inChannels: 1 });
  const conv = model.getModule('layer3.0.conv1') as nn.Conv2d;
  noGrad(() => scope(() => { conv.weight.narrow(0, 5, 1).mul_(10); }));
  const val: ImageSet = { images: zeros([4, 1, 16, 16], { dtype: 'uint8' }), labels: tensor([0, 1, 2, 3], [4]).long(), classes: 10 };
  const train = new Proxy({} as ImageSet, { get: () => { throw new Error('CLP read the training data'); } });
  const r = clp(model, { train, val, norm: PLANTED_NORM }, options());
  const hit = r.perLayer.filter((l) => l.pruned.length);
  assert.deepEqual(hit, [{ name: 'layer3.0.bn1', channels: 32, pruned: [5] }]);
  assert.equal(r.totalPruned, 1);
  const sd = model.stateDict();
  for (const k of ['layer3.0.bn1.weight', 'layer3.0.bn1.bias']) {
    const x = sd.get(k)!.toList();
    assert.ok(x[5] === 0, `${k}[5]`);
    if (k.endsWith('weight')) assert.ok(x.every((y, i) => i === 5 || y === 1), 'the other channels untouched');
  }
});

// CLP on the planted fixture (clean accuracy holds; the fixture backdoor is not where CLP looks): efficacy.test.ts
