import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { poisonTrainingSet, triggeredTestSet } from '../../src/attacks/poison';
import { applyTrigger, TriggerSpec } from '../../src/attacks/triggers';
import { Rng } from '../../src/util/rng';

const N = 3, C = 2, H = 5, W = 28;
/** pixel values spread over 0..255, so that both clipping ends are reached */
const images = (): T.Tensor => T.tensor(Uint8Array.from({ length: N * C * H * W }, (_, i) => (i * 37) % 256), [N, C, H, W]);

test('SIG adds delta sin(2 pi j f / W) along the columns, rounded and clipped to 0..255, on every pixel', () => {
  const img = images();
  const x = img.toArray() as Uint8Array;
  for (const [delta, freq] of [[40, 6], [20, 2.5]]) {
    const out = applyTrigger(img, { kind: 'sig', delta, freq }, new Rng(0)).toArray() as Uint8Array;
    let low = 0, high = 0;
    for (let i = 0; i < x.length; i++) {
      const j = i % W;
      const raw = x[i] + delta * Math.sin((2 * Math.PI * j * freq) / W);
      if (raw < 0) low++;
      if (raw > 255) high++;
      assert.equal(out[i], Math.min(255, Math.max(0, Math.round(raw))), `delta ${delta} f ${freq} pixel ${i} (column ${j}): x ${x[i]}`);
    }
    assert.ok(low > 0 && high > 0, `both clipping ends exercised (${low} below 0, ${high} above 255)`);
  }
});

test('SIG poisoning is clean-label: only target-class images change, every label stays, the ratio counts target-class images', () => {
  const n = 300;
  const imgs = T.tensor(Uint8Array.from({ length: n * 1 * 8 * 8 }, (_, i) => 60 + (i % 100)), [n, 1, 8, 8]);
  const labels = T.tensor(Float64Array.from({ length: n }, (_, i) => (i * 7) % 10), [n]).long();
  const trigger: TriggerSpec = { kind: 'sig', delta: 40, freq: 2 };
  const attack = { trigger, poisonRatio: 0.4, target: 3, mode: 'all-to-one' as const, seed: 5 };
  const p = poisonTrainingSet(imgs, labels, attack, 10);
  const y = labels.toList();
  const targets = y.filter((v) => v === 3).length;
  assert.equal(p.poisonedIndices.length, Math.round(0.4 * targets));
  assert.deepEqual(p.labels.toList(), y, 'labels unchanged');
  assert.equal(p.crossIndices.length, 0);
  const poisoned = new Set(p.poisonedIndices);
  for (const i of poisoned) assert.equal(y[i], 3, `poisoned image ${i} is of the target class`);
  const a = imgs.toArray() as Uint8Array, b = p.images.toArray() as Uint8Array;
  const stamped = applyTrigger(imgs, trigger, new Rng(0)).toArray() as Uint8Array;
  for (let i = 0; i < n; i++) {
    const got = Buffer.from(b.subarray(i * 64, (i + 1) * 64));
    const want = Buffer.from((poisoned.has(i) ? stamped : a).subarray(i * 64, (i + 1) * 64));
    assert.equal(Buffer.compare(got, want), 0, `image ${i} (${poisoned.has(i) ? 'poisoned' : 'clean'})`);
  }
  assert.deepEqual(Array.from(poisonTrainingSet(imgs, labels, attack, 10).poisonedIndices), Array.from(p.poisonedIndices), 'seeded');
  assert.throws(() => poisonTrainingSet(imgs, labels, { ...attack, mode: 'all-to-all' }, 10), /SIG attack is clean-label: it needs all-to-one/);

  const t = triggeredTestSet(imgs, labels, attack, 10);
  assert.equal(t.images.size(0), n - targets, 'every non-target test image is triggered');
  assert.ok(t.targetLabels.toList().every((v) => v === 3));
});

test('invalid SIG parameters are refused with the field', () => {
  const img = images();
  assert.throws(() => applyTrigger(img, { kind: 'sig', delta: 0, freq: 6 }, new Rng(0)), /sig delta must be in \(0, 255\], got 0/);
  assert.throws(() => applyTrigger(img, { kind: 'sig', delta: 20, freq: -1 }, new Rng(0)), /sig freq must be a positive number, got -1/);
});
