// SIG (Barni et al. 2019): a horizontal sinusoid added to whole images, x' = clip(x + delta sin(2 pi j f / W)).
import { z } from 'zod';
import { noGrad, scope, Tensor, tensor } from '../torch';
import { assertTestSetAllowed } from '../data/test-set-lock';

export const SIG_SCHEMA = z.object({
  kind: z.literal('sig'),
  /** amplitude in pixel units (0..255) */
  delta: z.number(),
  /** periods across the image width */
  freq: z.number(),
});
export type SigSpec = z.infer<typeof SIG_SCHEMA>;

/** The signal's value at each column j of a W-wide image. */
export function sigSignal(width: number, delta: number, freq: number): Float64Array {
  return Float64Array.from({ length: width }, (_, j) => delta * Math.sin((2 * Math.PI * j * freq) / width));
}

export function validateSig(t: SigSpec): void {
  if (!(t.delta > 0 && t.delta <= 255)) throw new Error(`trigger: sig delta must be in (0, 255], got ${t.delta}`);
  if (!(t.freq > 0 && Number.isFinite(t.freq))) throw new Error(`trigger: sig freq must be a positive number, got ${t.freq}`);
}

/** uint8 [N, C, H, W] -> uint8, rounded to the nearest level (float64, so the rounding matches the formula exactly). */
export function applySig(images: Tensor, t: SigSpec): Tensor {
  assertTestSetAllowed('stamping a trigger');
  const w = images.size(3);
  return noGrad(() => scope(() => {
    const signal = tensor(sigSignal(w, t.delta, t.freq), [1, 1, 1, w]);
    return images.to('float64').add(signal).round().clamp(0, 255).to('uint8');
  }));
}
