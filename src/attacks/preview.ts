// A PNG grid of clean images (top row) and their triggered versions (bottom row).
import { PNG } from 'pngjs';
import { Tensor } from '../torch';
import { writeFileAtomic } from '../util/atomic';

/** images: uint8 [N, C, H, W] with C = 1 or 3; rows of equal length are stacked, scaled by `scale`. */
export function gridPng(rows: Tensor[], scale = 4, gap = 2): Buffer {
  const [n, c, h, w] = rows[0].shape;
  const cellW = w * scale + gap, cellH = h * scale + gap;
  const png = new PNG({ width: n * cellW + gap, height: rows.length * cellH + gap });
  png.data.fill(255);
  rows.forEach((row, r) => {
    const px = row.toArray() as Uint8Array;
    for (let i = 0; i < n; i++)
      for (let y = 0; y < h * scale; y++)
        for (let x = 0; x < w * scale; x++) {
          const sy = Math.floor(y / scale), sx = Math.floor(x / scale);
          const at = (((r * cellH + gap + y) * png.width) + i * cellW + gap + x) * 4;
          for (let k = 0; k < 3; k++) png.data[at + k] = px[((i * c + (c === 1 ? 0 : k)) * h + sy) * w + sx];
          png.data[at + 3] = 255;
        }
  });
  return PNG.sync.write(png);
}

export function writePreview(file: string, clean: Tensor, poisoned: Tensor, scale = 4): void {
  writeFileAtomic(file, gridPng([clean, poisoned], scale));
}
