import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { poisonTrainingSet, triggeredTestSet } from '../../src/attacks/poison';
import { applyTrigger, TriggerSpec, triggerPattern } from '../../src/attacks/triggers';
import { Rng } from '../../src/util/rng';

const N = 6, C = 3, H = 10, W = 12;
function images(): T.Tensor {
  return T.tensor(Uint8Array.from({ length: N * C * H * W }, (_, i) => (i * 7) % 97), [N, C, H, W]);
}
const px = (a: Uint8Array, n: number, c: number, y: number, x: number): number => a[((n * C + c) * H + y) * W + x];

/** Pixels that differ between two image sets, as [n, c, y, x]. */
function changed(a: T.Tensor, b: T.Tensor): number[][] {
  const x = a.toArray() as Uint8Array, y = b.toArray() as Uint8Array;
  const out: number[][] = [];
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++)
    if (px(x, n, c, i, j) !== px(y, n, c, i, j)) out.push([n, c, i, j]);
  return out;
}

test('fixed patches stamp exactly the k x k corner (with offset), per pattern', () => {
  const img = images();
  for (const pattern of ['white', 'checkerboard', 'random'] as const) {
    const t: TriggerSpec = { kind: 'patch', size: 3, pattern, position: 'fixed', offset: [2, 1], seed: 5 };
    const out = applyTrigger(img, t, new Rng(0));
    const o = out.toArray() as Uint8Array;
    const pat = triggerPattern(t, C, H, W);
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++)
      assert.equal(px(o, n, c, H - 3 - 1 + i, W - 3 - 2 + j), pat[c * 9 + i * 3 + j], `${pattern} n${n} c${c} (${i},${j})`);
    for (const [, , y, x] of changed(img, out)) assert.ok(y >= H - 4 && y < H - 1 && x >= W - 5 && x < W - 2, `pixel (${y},${x}) outside the patch changed`);
    if (pattern === 'white') assert.ok(pat.every((v) => v === 255));
    if (pattern === 'checkerboard') assert.deepEqual(Array.from(pat.subarray(0, 9)), [255, 0, 255, 0, 255, 0, 255, 0, 255]);
  }
});

test('random-position patches move per image, stay inside, and repeat with the seed', () => {
  const img = images();
  const t: TriggerSpec = { kind: 'patch', size: 4, pattern: 'white', position: 'random' };
  const a = applyTrigger(img, t, new Rng(9)), b = applyTrigger(img, t, new Rng(9));
  assert.deepEqual(a.toList(), b.toList(), 'same seed, same positions');
  const o = a.toArray() as Uint8Array;
  const corners = new Set<string>();
  for (let n = 0; n < N; n++) {
    // find the 4x4 all-white window of image n (the synthetic pixels never reach 255)
    let found = '';
    for (let y = 0; y + 4 <= H; y++) for (let x = 0; x + 4 <= W; x++) {
      let all = true;
      for (let c = 0; c < C && all; c++) for (let i = 0; i < 4 && all; i++) for (let j = 0; j < 4 && all; j++) all = px(o, n, c, y + i, x + j) === 255;
      if (all) found = `${y},${x}`;
    }
    assert.ok(found, `image ${n} has no patch`);
    corners.add(found);
  }
  assert.ok(corners.size > 1, 'positions vary across images');
  assert.equal(changed(img, a).length, N * C * 16);
});

test('blended noise follows x\' = round((1 - a) x + a t) on every pixel', () => {
  const img = images();
  const t: TriggerSpec = { kind: 'blend', alpha: 0.2, seed: 4 };
  const out = applyTrigger(img, t, new Rng(0)).toArray() as Uint8Array;
  const x = img.toArray() as Uint8Array;
  const noise = triggerPattern(t, C, H, W);
  for (let i = 0; i < x.length; i++) {
    const exact = 0.8 * x[i] + 0.2 * noise[i % (C * H * W)];
    assert.ok(Math.abs(out[i] - exact) <= 0.5 + 1e-4, `pixel ${i}: ${out[i]} vs ${exact}`);
  }
});

test('invalid triggers are refused with the reason', () => {
  const img = images();
  assert.throws(() => applyTrigger(img, { kind: 'patch', size: 11, pattern: 'white', position: 'fixed' }, new Rng(0)), /patch size must be an integer in 1\.\.10/);
  assert.throws(() => applyTrigger(img, { kind: 'patch', size: 3, pattern: 'white', position: 'fixed', offset: [10, 0] }, new Rng(0)), /offset \[10, 0\] puts the 3x3 patch outside/);
  assert.throws(() => applyTrigger(img, { kind: 'blend', alpha: 0 }, new Rng(0)), /alpha must be in \(0, 1\]/);
});

test('poisoning relabels exactly ratio * N non-target samples and stamps only them', () => {
  const n = 200;
  const imgs = T.tensor(Uint8Array.from({ length: n * 1 * 8 * 8 }, (_, i) => i % 200), [n, 1, 8, 8]);
  const labels = T.tensor(Float64Array.from({ length: n }, (_, i) => i % 10), [n]).long();
  const attack = { trigger: { kind: 'patch', size: 2, pattern: 'white', position: 'fixed' } as TriggerSpec, poisonRatio: 0.05, target: 3, mode: 'all-to-one' as const, seed: 7 };
  const p = poisonTrainingSet(imgs, labels, attack, 10);
  assert.equal(p.poisonedIndices.length, 10);
  const y0 = labels.toList(), y1 = p.labels.toList();
  const poisoned = new Set(p.poisonedIndices);
  for (let i = 0; i < n; i++) {
    if (poisoned.has(i)) { assert.notEqual(y0[i], 3); assert.equal(y1[i], 3); }
    else assert.equal(y1[i], y0[i]);
  }
  const a = imgs.toArray() as Uint8Array, b = p.images.toArray() as Uint8Array;
  for (let i = 0; i < n; i++) {
    const same = Buffer.compare(Buffer.from(a.subarray(i * 64, (i + 1) * 64)), Buffer.from(b.subarray(i * 64, (i + 1) * 64))) === 0;
    assert.equal(same, !poisoned.has(i), `image ${i}`);
  }
  assert.deepEqual(Array.from(poisonTrainingSet(imgs, labels, attack, 10).poisonedIndices), Array.from(p.poisonedIndices), 'seeded');
  const all = poisonTrainingSet(imgs, labels, { ...attack, mode: 'all-to-all', poisonRatio: 0.1 }, 10);
  const yAll = all.labels.toList();
  for (const i of all.poisonedIndices) assert.equal(yAll[i], (y0[i] + 1) % 10);
  const test2 = triggeredTestSet(imgs, labels, attack, 10);
  assert.equal(test2.images.size(0), 180, 'target-class images are left out of ASR');
  assert.ok(test2.targetLabels.toList().every((v) => v === 3));
  assert.ok(test2.trueLabels.toList().every((v) => v !== 3));
});
