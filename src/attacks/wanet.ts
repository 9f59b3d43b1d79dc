// WaNet (Nguyen and Tran 2021): images resampled through a fixed smooth warping field, as BackdoorBench
// builds it: k x k offsets in [-1, 1] divided by their mean |.|, upsampled bicubically to H x W, scaled
// by s / H and added to the identity grid (times grid_rescale, clamped to [-1, 1]). The noise mode adds
// uniform [-1, 1] / H noise per image and pixel on top of the warp.
import { z } from 'zod';
import { callOp, cat, noGrad, scope, Tensor, tensor } from '../torch';
import { Rng } from '../util/rng';
import { assertSpec, inRange, numberThat } from '../util/validation';
import { assertTestSetAllowed } from '../data/test-set-lock';

export const WANET_SCHEMA = z.object({
  kind: z.literal('wanet'),
  /** side of the control grid (at most the image side: validateWanet) */
  k: numberThat('an integer >= 2').int().min(2),
  /** warping strength */
  s: numberThat('a positive number').gt(0).finite(),
  gridRescale: inRange('(0, 1]').gt(0).max(1),
  /** noise-mode images per poisoned image (kept at their true labels) */
  crossRatio: numberThat('a number >= 0').min(0).finite(),
  /** seed of the control grid */
  seed: z.number().int().optional(),
});
export type WanetSpec = z.infer<typeof WANET_SCHEMA>;

/** The control grid [2, k, k] (x offsets, then y offsets), drawn from the seed and normalised by mean |.|. */
export function wanetControlGrid(k: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const v = Float64Array.from({ length: 2 * k * k }, () => rng.next() * 2 - 1);
  const meanAbs = v.reduce((a, x) => a + Math.abs(x), 0) / v.length;
  return v.map((x) => x / meanAbs);
}

export function validateWanet(t: WanetSpec, height: number, width: number): void {
  if (!Number.isInteger(t.k) || t.k < 2 || t.k > Math.min(height, width)) throw new Error(`trigger: wanet k must be an integer in 2..${Math.min(height, width)}, got ${t.k}`);
  assertSpec(WANET_SCHEMA, t, 'trigger: wanet');
}

/** The upsampled offsets [1, H, W, 2] (float64), before the s / H scaling. */
export function wanetNoiseField(t: WanetSpec, height: number, width: number): Tensor {
  return scope(() => {
    const ctrl = tensor(wanetControlGrid(t.k, t.seed ?? 0), [1, 2, t.k, t.k]);
    return callOp('aten::upsample_bicubic2d', '', ctrl, [height, width], true, null, null).permute([0, 2, 3, 1]).contiguous();
  });
}

/** The identity sampling grid [1, H, W, 2]: (x, y) in [-1, 1], corners on pixel centres. */
export function identityGrid(height: number, width: number): Tensor {
  const g = new Float64Array(height * width * 2);
  for (let i = 0; i < height; i++)
    for (let j = 0; j < width; j++) {
      g[(i * width + j) * 2] = width === 1 ? 0 : -1 + (2 * j) / (width - 1);
      g[(i * width + j) * 2 + 1] = height === 1 ? 0 : -1 + (2 * i) / (height - 1);
    }
  return tensor(g, [1, height, width, 2]);
}

/** The backdoor's sampling grid [1, H, W, 2] (float64). */
export function wanetGrid(t: WanetSpec, height: number, width: number): Tensor {
  return scope(() => identityGrid(height, width).add(wanetNoiseField(t, height, width).mul(t.s / height)).mul(t.gridRescale).clamp(-1, 1));
}

/** Bilinear resampling of float images [N, C, H, W] through grid [1 or N, H, W, 2] (align_corners, zero padding). */
export function warp(images: Tensor, grid: Tensor): Tensor {
  const [n, , h, w] = images.shape;
  return scope(() => {
    const g = (grid.size(0) === n ? grid : grid.expand([n, h, w, 2]).contiguous()).to(images.dtype);
    return callOp('aten::grid_sampler', '', images, g, 0, 0, true);
  });
}

const CHUNK = 1000;

/**
 * Warped copies of uint8 images [N, C, H, W]. With `noise`, each image also gets its own uniform
 * [-1, 1] / H grid noise drawn from it, in order (the noise mode).
 */
export function applyWanet(images: Tensor, t: WanetSpec, noise?: Rng): Tensor {
  assertTestSetAllowed('stamping a trigger');
  const [n, c, h, w] = images.shape;
  return noGrad(() => scope(() => {
    const grid = wanetGrid(t, h, w);
    const parts: Tensor[] = [];
    for (let s = 0; s < n; s += CHUNK) {
      const m = Math.min(CHUNK, n - s);
      let g = grid;
      if (noise) {
        const r = Float64Array.from({ length: m * h * w * 2 }, () => (noise.next() * 2 - 1) / h);
        g = grid.add(tensor(r, [m, h, w, 2])).clamp(-1, 1);
      }
      parts.push(warp(images.narrow(0, s, m).to('float32'), g).round().clamp(0, 255).to('uint8'));
    }
    return n === 0 ? images.clone() : cat(parts, 0);
  }));
}
