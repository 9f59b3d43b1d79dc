// SIG (Barni et al. 2019): a horizontal sinusoid added to whole images, x' = clip(x + delta sin(2 pi j f / W)).
import { z } from 'zod';
import { assertSpec, inRange, numberThat } from '../util/validation';
import { noGrad, scope, Tensor, tensor } from '../torch';
import { assertTestSetAllowed } from '../data/test-set-lock';

export const SIG_SCHEMA = z.object({
  kind: z.literal('sig'),
  /** amplitude in pixel units (0..255) */
  delta: inRange('(0, 255]').gt(0).max(255),
  /** periods across the image width */
  freq: numberThat('a positive number').gt(0).finite(),
});
export type SigSpec = z.infer<typeof SIG_SCHEMA>;

/** The signal's value at each column j of a W-wide image. */
export function sigSignal(width: number, delta: number, freq: number): Float64Array {
  return Float64Array.from({ length: width }, (_, j) => delta * Math.sin((2 * Math.PI * j * freq) / width));
}

/** The schema's ranges, for specs built in code (a parsed config has them already). */
export function validateSig(t: SigSpec): void {
  assertSpec(SIG_SCHEMA, t, 'trigger: sig');
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
