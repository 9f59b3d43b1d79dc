import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { poisonTrainingSet } from '../../src/attacks/poison';
import { applyTrigger, WanetSpec } from '../../src/attacks/triggers';
import { applyWanet, identityGrid, warp, wanetControlGrid, wanetGrid, wanetNoiseField } from '../../src/attacks/wanet';
import { Rng } from '../../src/util/rng';

const H = 12, W = 12;
const SPEC: WanetSpec = { kind: 'wanet', k: 4, s: 0.5, gridRescale: 1, crossRatio: 2, seed: 11 };

/** PyTorch's bicubic kernel (A = -0.75) with align_corners, border indices clamped. */
function bicubic(src: Float64Array, k: number, out: number): Float64Array {
  const A = -0.75;
  const near = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1;
  const far = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  const at = (r: number, c: number): number => src[Math.min(k - 1, Math.max(0, r)) * k + Math.min(k - 1, Math.max(0, c))];
  const res = new Float64Array(out * out);
  for (let i = 0; i < out; i++) for (let j = 0; j < out; j++) {
    const ry = (i * (k - 1)) / (out - 1), rx = (j * (k - 1)) / (out - 1);
    const y0 = Math.floor(ry), x0 = Math.floor(rx), ty = ry - y0, tx = rx - x0;
    const wy = [far(ty + 1), near(ty), near(1 - ty), far(2 - ty)], wx = [far(tx + 1), near(tx), near(1 - tx), far(2 - tx)];
    let v = 0;
    for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) v += wy[a] * wx[b] * at(y0 - 1 + a, x0 - 1 + b);
    res[i * out + j] = v;
  }
  return res;
}

/** The backdoor grid computed directly: (x, y) per pixel. */
function directGrid(t: WanetSpec): Float64Array {
  const rng = new Rng(t.seed ?? 0);
  const ctrl = Float64Array.from({ length: 2 * t.k * t.k }, () => rng.next() * 2 - 1);
  const meanAbs = ctrl.reduce((a, v) => a + Math.abs(v), 0) / ctrl.length;
  const fx = bicubic(ctrl.slice(0, t.k * t.k).map((v) => v / meanAbs), t.k, H);
  const fy = bicubic(ctrl.slice(t.k * t.k).map((v) => v / meanAbs), t.k, H);
  const g = new Float64Array(H * W * 2);
  const clamp = (v: number): number => Math.min(1, Math.max(-1, v));
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
    g[(i * W + j) * 2] = clamp((-1 + (2 * j) / (W - 1) + (t.s * fx[i * W + j]) / H) * t.gridRescale);
    g[(i * W + j) * 2 + 1] = clamp((-1 + (2 * i) / (H - 1) + (t.s * fy[i * W + j]) / H) * t.gridRescale);
  }
  return g;
}

/** Bilinear sample of one channel at grid point (gx, gy) in [-1, 1], align_corners, zero outside. */
function bilinear(img: Float64Array, gx: number, gy: number): number {
  const x = ((gx + 1) / 2) * (W - 1), y = ((gy + 1) / 2) * (H - 1);
  const x0 = Math.floor(x), y0 = Math.floor(y), dx = x - x0, dy = y - y0;
  const at = (r: number, c: number): number => (r < 0 || r >= H || c < 0 || c >= W ? 0 : img[r * W + c]);
  return at(y0, x0) * (1 - dx) * (1 - dy) + at(y0, x0 + 1) * dx * (1 - dy) + at(y0 + 1, x0) * (1 - dx) * dy + at(y0 + 1, x0 + 1) * dx * dy;
}

test('the control grid and warp field follow from the seed: uniform [-1, 1] offsets / mean |.|, bicubic upsampling, s / H, clamp', () => {
  const ctrl = wanetControlGrid(4, 11);
  const rng = new Rng(11);
  const raw = Array.from({ length: 32 }, () => rng.next() * 2 - 1);
  const m = raw.reduce((a, v) => a + Math.abs(v), 0) / 32;
  raw.forEach((v, i) => assert.ok(Math.abs(ctrl[i] - v / m) < 1e-12, `offset ${i}`));
  assert.ok(Math.abs(ctrl.reduce((a, v) => a + Math.abs(v), 0) / 32 - 1) < 1e-12, 'mean |offset| is 1');
  assert.notDeepEqual(Array.from(wanetControlGrid(4, 12)), Array.from(ctrl), 'another seed, another field');

  const field = wanetNoiseField(SPEC, H, W).toList();
  const fx = bicubic(ctrl.slice(0, 16), 4, H);
  for (let p = 0; p < H * W; p++) assert.ok(Math.abs(field[p * 2] - fx[p]) < 1e-9, `field x at ${p}: ${field[p * 2]} vs ${fx[p]}`);
  for (const t of [SPEC, { ...SPEC, s: 8, gridRescale: 0.9 }]) {
    const got = wanetGrid(t, H, W).toList(), want = directGrid(t);
    want.forEach((v, i) => assert.ok(Math.abs(got[i] - v) < 1e-9, `grid ${i} (s ${t.s}): ${got[i]} vs ${v}`));
    if (t.s === 8) assert.ok(want.some((v) => Math.abs(v) === 1), 'the strong field reaches the clamp');
  }
});

test('warping through the identity grid (a zero field) returns the images unchanged', () => {
  const img = T.tensor(Uint8Array.from({ length: 2 * 3 * H * W }, (_, i) => (i * 29) % 256), [2, 3, H, W]);
  const out = warp(img.to('float64'), identityGrid(H, W)).round().to('uint8');
  assert.deepEqual(Array.from(out.toArray() as Uint8Array), Array.from(img.toArray() as Uint8Array));
});

test('a warped image matches direct bilinear interpolation through the direct grid', () => {
  const x = Float64Array.from({ length: H * W }, (_, i) => Math.sin(i * 0.7) * 100 + 128);
  const img = T.tensor(x, [1, 1, H, W]);
  const t = { ...SPEC, s: 3 };
  const g = directGrid(t);
  const out = warp(img, wanetGrid(t, H, W)).toArray() as Float64Array;
  const u8 = T.tensor(Uint8Array.from(x, Math.round), [1, 1, H, W]);
  const stamped = applyTrigger(u8, t, new Rng(0)).toArray() as Uint8Array;
  const xr = Float64Array.from(x, Math.round);
  let moved = 0;
  for (const [i, j] of [[0, 0], [2, 9], [5, 5], [7, 1], [11, 11], [10, 4]]) {
    const p = i * W + j;
    const want = bilinear(x, g[p * 2], g[p * 2 + 1]);
    assert.ok(Math.abs(out[p] - want) < 1e-5, `pixel (${i}, ${j}): ${out[p]} vs ${want}`);
    assert.ok(Math.abs(stamped[p] - bilinear(xr, g[p * 2], g[p * 2 + 1])) <= 0.5 + 1e-3, `uint8 pixel (${i}, ${j})`);
    if (Math.abs(want - x[p]) > 1) moved++;
  }
  assert.ok(moved >= 3, `the warp moves pixels (${moved} of 6 changed by > 1)`);
});

test('WaNet poisoning relabels the warped samples and adds cross-ratio noise-mode samples at their true labels', () => {
  const n = 200;
  const imgs = T.tensor(Uint8Array.from({ length: n * H * W }, (_, i) => (i * 31) % 256), [n, 1, H, W]);
  const labels = T.tensor(Float64Array.from({ length: n }, (_, i) => i % 10), [n]).long();
  const attack = { trigger: SPEC, poisonRatio: 0.1, target: 2, mode: 'all-to-one' as const, seed: 4 };
  const p = poisonTrainingSet(imgs, labels, attack, 10);
  const y = labels.toList(), y1 = p.labels.toList();
  assert.equal(p.poisonedIndices.length, 20);
  assert.equal(p.crossIndices.length, 40, 'cross ratio 2');
  const poisoned = new Set(p.poisonedIndices), cross = new Set(p.crossIndices);
  for (const i of cross) assert.ok(!poisoned.has(i), `sample ${i} is either poisoned or noise-mode`);
  for (let i = 0; i < n; i++) assert.equal(y1[i], poisoned.has(i) ? 2 : y[i], `label ${i}`);
  for (const i of poisoned) assert.notEqual(y[i], 2);

  const a = imgs.toArray() as Uint8Array, b = p.images.toArray() as Uint8Array;
  const warped = applyWanet(imgs, SPEC).toArray() as Uint8Array;
  const img = (arr: Uint8Array, i: number): Buffer => Buffer.from(arr.subarray(i * H * W, (i + 1) * H * W));
  for (let i = 0; i < n; i++) {
    if (poisoned.has(i)) assert.equal(Buffer.compare(img(b, i), img(warped, i)), 0, `poisoned ${i} is the plain warp`);
    else if (cross.has(i)) {
      assert.notEqual(Buffer.compare(img(b, i), img(warped, i)), 0, `noise-mode ${i} differs from the plain warp`);
      assert.notEqual(Buffer.compare(img(b, i), img(a, i)), 0, `noise-mode ${i} is warped`);
    } else assert.equal(Buffer.compare(img(b, i), img(a, i)), 0, `clean ${i}`);
  }
  const q = poisonTrainingSet(imgs, labels, attack, 10);
  assert.deepEqual(Array.from(q.images.toArray() as Uint8Array), Array.from(b), 'seeded: same images');
  assert.deepEqual(Array.from(q.crossIndices), Array.from(p.crossIndices));
  assert.throws(() => poisonTrainingSet(imgs, labels, { ...attack, poisonRatio: 0.5 }, 10), /cannot add 200 WaNet noise-mode samples \(cross ratio 2\): only 100/);
  assert.equal(poisonTrainingSet(imgs, labels, { ...attack, trigger: { ...SPEC, crossRatio: 0 } }, 10).crossIndices.length, 0);
});

test('invalid WaNet parameters are refused with the field', () => {
  const img = T.zeros([1, 1, H, W], { dtype: 'uint8' });
  assert.throws(() => applyTrigger(img, { ...SPEC, k: 1 }, new Rng(0)), /wanet k must be an integer in 2\.\.12, got 1/);
  assert.throws(() => applyTrigger(img, { ...SPEC, k: 13 }, new Rng(0)), /wanet k must be an integer in 2\.\.12, got 13/);
  assert.throws(() => applyTrigger(img, { ...SPEC, s: 0 }, new Rng(0)), /wanet s must be a positive number, got 0/);
  assert.throws(() => applyTrigger(img, { ...SPEC, gridRescale: 1.5 }, new Rng(0)), /wanet gridRescale must be in \(0, 1\], got 1\.5/);
  assert.throws(() => applyTrigger(img, { ...SPEC, crossRatio: -1 }, new Rng(0)), /wanet crossRatio must be a number >= 0, got -1/);
});
