import { test } from 'node:test';
import * as assert from 'assert/strict';
import { PNG } from 'pngjs';
import { gridPng } from '../../src/attacks/preview';
import * as T from '../../src/torch';

test('the preview grid is a PNG with each image scaled in place, clean row above triggered row', () => {
  const clean = T.tensor(Uint8Array.from({ length: 2 * 1 * 3 * 3 }, (_, i) => i * 10), [2, 1, 3, 3]);
  const stamped = clean.clone().fill_(255);
  const png = PNG.sync.read(gridPng([clean, stamped], 2, 1));
  assert.equal(png.width, 2 * (3 * 2 + 1) + 1);
  assert.equal(png.height, 2 * (3 * 2 + 1) + 1);
  const at = (x: number, y: number): number[] => Array.from(png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 4));
  // image 1, pixel (row 2, col 1) = value (9 + 2*3 + 1) * 10 = 160, drawn at scale 2 in the top row
  assert.deepEqual(at(1 * 7 + 1 + 1 * 2, 1 + 2 * 2), [160, 160, 160, 255]);
  assert.deepEqual(at(1 + 0, 7 + 1), [255, 255, 255, 255], 'bottom row holds the triggered image');
});
