import { test } from 'node:test';
import * as assert from 'assert/strict';
import { manualSeed, rand, scope, tensor } from '../../src/torch';
import { PatchGenerator, Placement, stamp } from '../../src/defenses/gan';
import { Rng } from '../../src/util/rng';

test('the generator maps noise to [C, k, k] patches in [0, 1] that differ with z', () => {
  manualSeed(0);
  const g = new PatchGenerator(32, 64, 3, 5);
  const p = g.sample(16);
  assert.deepEqual(p.shape, [16, 3, 5, 5]);
  const v = p.toList();
  assert.ok(v.every((x) => x >= 0 && x <= 1));
  const spread = scope(() => p.std(0).mean().item());
  assert.ok(spread > 1e-3, `patches vary with z (std ${spread})`);
  g.dispose();
});

test('stamping pastes each patch at its own position, leaves the rest, and passes gradients to the patch', () => {
  manualSeed(0);
  const x = rand([2, 3, 8, 8]);
  const patches = tensor(Float32Array.from({ length: 2 * 3 * 9 }, (_, i) => 2 + i), [2, 3, 3, 3]).requiresGrad_(true);
  const positions: [number, number][] = [[0, 5], [4, 1]];
  const out = stamp(x, patches, positions);
  const xs = x.toList(), os = out.toList(), ps = patches.toList();
  for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) {
    const [r, col] = positions[b];
    const inside = i >= r && i < r + 3 && j >= col && j < col + 3;
    const got = os[((b * 3 + c) * 8 + i) * 8 + j];
    const want = inside ? ps[((b * 3 + c) * 3 + i - r) * 3 + j - col] : xs[((b * 3 + c) * 8 + i) * 8 + j];
    assert.equal(got, want, `image ${b} channel ${c} pixel (${i}, ${j})`);
  }
  out.sum().backward();
  assert.ok(patches.grad!.toList().every((g) => g === 1), 'every patch pixel lands exactly once');
  assert.throws(() => stamp(x, patches, [[6, 0], [0, 0]]), /leaves the 8x8 image/);
});

test('adaptive placement draws towards the positions that worked, uniform placement does not', () => {
  const pl = new Placement(6, 6, 3, true, new Rng(1));
  const all: [number, number][] = [];
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) all.push([r, c]);
  pl.update(all, all.map(([r, c]) => (r === 3 && c === 2 ? 1 : 0)));
  assert.ok(pl.sample(200, 0).filter(([r, c]) => r === 3 && c === 2).length >= 190);
  const mixed = pl.sample(400, 0.5);
  const best = mixed.filter(([r, c]) => r === 3 && c === 2).length;
  assert.ok(best > 180 && best < 260, `about half (+ 1/16 of the rest) at the best position: ${best}`);
  assert.equal(new Set(mixed.map(([r, c]) => `${r},${c}`)).size, 16, 'exploration still visits every position');
  const uniform = new Placement(6, 6, 3, false, new Rng(1));
  uniform.update(all, all.map(() => 1));
  assert.ok(uniform.sample(400).filter(([r, c]) => r === 3 && c === 2).length < 60);
});

// whether it finds the target and removes the backdoor: efficacy.test.ts
