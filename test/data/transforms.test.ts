// --resize / --center-crop: torchvision's Resize(n) then CenterCrop(m), on uint8 images.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { resizedSize, transformImage } from '../../src/data/transforms';
import { python, tmpDir } from '../helpers';

test('resized sizes as torchvision 0.14: the shorter side to n, the longer truncated in proportion', () => {
  assert.deepEqual(resizedSize(37, 53, 24), [24, 34]);
  assert.deepEqual(resizedSize(53, 37, 24), [34, 24]);
  assert.deepEqual(resizedSize(500, 375, 256), [341, 256]);
  assert.deepEqual(resizedSize(24, 30, 24), [24, 30], 'the shorter side already n: unchanged');
});

test('Resize + CenterCrop equal torchvision\'s on tensors (antialias) and within a level of its PIL path', () => {
  const dir = tmpDir('resize');
  for (const [c, h, w, resize, crop] of [[3, 37, 53, 24, 20], [1, 61, 40, 28, 28], [3, 20, 26, 32, 31]] as const) {
    // smooth gradients and noise: both an upscale and a downscale, odd crops
    const data = Uint8Array.from({ length: c * h * w }, (_, i) => ((i % w) * 3 + Math.floor(i / w) * 2 + ((i * 2654435761) >>> 28)) % 256);
    const file = path.join(dir, 'in.json');
    fs.writeFileSync(file, JSON.stringify({ shape: [c, h, w], data: Array.from(data), resize, crop }));
    const ref = JSON.parse(python('resize_ref.py', file)) as { tensor: number[]; pil: number[]; shape: number[] };
    const out = transformImage({ data, channels: c, height: h, width: w }, { resize, centerCrop: crop }, 'img');
    assert.deepEqual([out.channels, out.height, out.width], ref.shape);
    const worst = (r: number[]): number => r.reduce((m, v, i) => Math.max(m, Math.abs(v - out.data[i])), 0);
    // libtorch's kernel on both sides, rounded the same way: equal up to a rounding tie
    assert.ok(worst(ref.tensor) <= 1, `${c}x${h}x${w}: max diff ${worst(ref.tensor)} from torchvision's tensor path`);
    assert.ok(worst(ref.pil) <= 2, `${c}x${h}x${w}: max diff ${worst(ref.pil)} from torchvision's PIL path`);
  }
  assert.throws(() => transformImage({ data: new Uint8Array(3 * 10 * 12), channels: 3, height: 10, width: 12 }, { centerCrop: 11 }, 'small.png'),
    /small\.png: a 11x11 centre crop of a 10x12 image/);
  fs.rmSync(dir, { recursive: true });
});
