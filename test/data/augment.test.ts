import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { randomCropFlip } from '../../src/data/augment';
import { normalize } from '../../src/train/loop';

test('random crop + flip returns, per image, a window of the zero-padded image, maybe mirrored', () => {
  T.manualSeed(2);
  const n = 16, h = 6, w = 5, pad = 2;
  const x = T.tensor(Uint8Array.from({ length: n * 2 * h * w }, (_, i) => 1 + (i % 250)), [n, 2, h, w]);
  const y = randomCropFlip(x, pad);
  assert.deepEqual(y.shape, [n, 2, h, w]);
  assert.equal(y.dtype, 'uint8');
  const padded = T.F.pad(x, [pad, pad, pad, pad], 0);
  let flipped = 0, shifted = 0;
  for (let i = 0; i < n; i++) {
    const out = y.select(0, i).toList().join();
    let match = '';
    for (let dy = 0; dy <= 2 * pad && !match; dy++) for (let dx = 0; dx <= 2 * pad && !match; dx++) {
      const win = padded.select(0, i).narrow(1, dy, h).narrow(2, dx, w);
      if (win.contiguous().toList().join() === out) match = `${dy},${dx},plain`;
      else if (win.flip([2]).contiguous().toList().join() === out) match = `${dy},${dx},flip`;
    }
    assert.ok(match, `image ${i} is not a crop of its padded original`);
    if (match.endsWith('flip')) flipped++;
    if (!match.startsWith(`${pad},${pad}`)) shifted++;
  }
  assert.ok(flipped > 0 && flipped < n, `flips: ${flipped}/${n}`);
  assert.ok(shifted > 0, 'some crops are shifted');
  T.manualSeed(2);
  assert.deepEqual(randomCropFlip(x, pad).toList(), y.toList(), 'seeded');
});

test('normalisation maps uint8 to (x / 255 - mean) / std per channel', () => {
  const x = T.tensor(Uint8Array.from([0, 255, 51, 102]), [1, 2, 1, 2]);
  const v = normalize(x, { mean: [0.5, 0.2], std: [0.5, 0.1] }).toList();
  const want = [(0 - 0.5) / 0.5, (1 - 0.5) / 0.5, (0.2 - 0.2) / 0.1, (0.4 - 0.2) / 0.1];
  v.forEach((a, i) => assert.ok(Math.abs(a - want[i]) < 1e-5, `${a} vs ${want[i]}`));
});
