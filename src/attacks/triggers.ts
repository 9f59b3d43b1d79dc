// Backdoor triggers in pixel space (uint8 images [N, C, H, W]): BadNets-style patches, blended noise,
// the SIG sinusoid, the WaNet warp, and a trigger given as an image file.
import { noGrad, scope, Tensor, tensor } from '../torch';
import { Rng } from '../util/rng';
import { assertSpec, inRange, numberThat } from '../util/validation';
import { assertTestSetAllowed } from '../data/test-set-lock';
import { z } from 'zod';
import { applySig, SIG_SCHEMA, validateSig } from './sig';
import { applyWanet, validateWanet, WANET_SCHEMA } from './wanet';
import { applyImageTrigger, describeImageTrigger, IMAGE_TRIGGER_SCHEMA, validateImageTrigger } from './image-trigger';

export type { SigSpec } from './sig';
export type { WanetSpec } from './wanet';
export type { ImageTriggerSpec } from './image-trigger';

export const PATCH_PATTERNS = ['white', 'checkerboard', 'random'] as const;
export type PatchPattern = (typeof PATCH_PATTERNS)[number];

export const PATCH_SCHEMA = z.object({
  kind: z.literal('patch'),
  /** side of the square patch, in pixels (at most the image side: attackIssues) */
  size: numberThat('an integer >= 1').int().min(1),
  pattern: z.enum(PATCH_PATTERNS),
  /** 'fixed': at the bottom-right corner shifted by offset; 'random': a new position per image */
  position: z.enum(['fixed', 'random']),
  /** [dx, dy] from the bottom-right corner (fixed position only) */
  offset: z.tuple([z.number().int(), z.number().int()]).optional(),
  /** seed of the random-valued pattern */
  seed: z.number().int().optional(),
});
export type PatchSpec = z.infer<typeof PATCH_SCHEMA>;

export const BLEND_SCHEMA = z.object({
  kind: z.literal('blend'),
  /** x' = (1 - alpha) x + alpha t */
  alpha: inRange('(0, 1]').gt(0).max(1),
  /** seed of the full-image noise pattern t */
  seed: z.number().int().optional(),
});
export type BlendSpec = z.infer<typeof BLEND_SCHEMA>;

/**
 * Each trigger kind's one schema (here and in sig.ts, wanet.ts, image-trigger.ts): the shape a training
 * run's config.json and every report record; the ranges that depend on the dataset are attackIssues'.
 */
export const TRIGGER_SCHEMA = z.discriminatedUnion('kind', [PATCH_SCHEMA, BLEND_SCHEMA, SIG_SCHEMA, WANET_SCHEMA, IMAGE_TRIGGER_SCHEMA]);
export type TriggerSpec = z.infer<typeof TRIGGER_SCHEMA>;

export function describeTrigger(t: TriggerSpec): string {
  if (t.kind === 'blend') return `blended noise, alpha ${t.alpha}`;
  if (t.kind === 'sig') return `SIG sinusoid, delta ${t.delta}, frequency ${t.freq} (clean label)`;
  if (t.kind === 'image') return describeImageTrigger(t);
  if (t.kind === 'wanet') return `WaNet warp, k ${t.k}, s ${t.s}, grid rescale ${t.gridRescale}, cross ratio ${t.crossRatio}, field seed ${t.seed ?? 0}`;
  return `${t.size}x${t.size} ${t.pattern} patch, ${t.position} position`;
}

/** The trigger's pixel content: [C, k, k] for a patch, [C, H, W] noise for blend (uint8). */
export function triggerPattern(t: PatchSpec | BlendSpec, channels: number, height: number, width: number): Uint8Array {
  const rng = new Rng(t.seed ?? 0);
  if (t.kind === 'blend') return Uint8Array.from({ length: channels * height * width }, () => rng.int(256));
  const k = t.size;
  const out = new Uint8Array(channels * k * k);
  for (let c = 0; c < channels; c++)
    for (let i = 0; i < k; i++)
      for (let j = 0; j < k; j++)
        out[c * k * k + i * k + j] = t.pattern === 'white' ? 255 : t.pattern === 'checkerboard' ? ((i + j) % 2 === 0 ? 255 : 0) : rng.int(256);
  return out;
}

export function validateTrigger(t: TriggerSpec, height: number, width: number): void {
  if (t.kind === 'sig') return validateSig(t);
  if (t.kind === 'wanet') return validateWanet(t, height, width);
  if (t.kind === 'image') return validateImageTrigger(t, height, width);
  if (t.kind === 'blend') {
    assertSpec(BLEND_SCHEMA, t, 'trigger:');
    return;
  }
  if (!Number.isInteger(t.size) || t.size < 1 || t.size > Math.min(height, width))
    throw new Error(`trigger: patch size must be an integer in 1..${Math.min(height, width)}, got ${t.size}`);
  const [dx, dy] = t.offset ?? [0, 0];
  if (t.position === 'fixed' && (dx < 0 || dy < 0 || dx + t.size > width || dy + t.size > height))
    throw new Error(`trigger: offset [${dx}, ${dy}] puts the ${t.size}x${t.size} patch outside the ${width}x${height} image`);
}

/**
 * Returns a triggered copy of uint8 images [N, C, H, W]. Random positions are drawn from `rng`
 * (one per image, in order), so the same seed stamps the same places.
 */
export function applyTrigger(images: Tensor, t: TriggerSpec, rng: Rng): Tensor {
  assertTestSetAllowed('stamping a trigger');
  const [n, c, h, w] = images.shape;
  validateTrigger(t, h, w);
  if (t.kind === 'sig') return applySig(images, t);
  if (t.kind === 'wanet') return applyWanet(images, t);
  if (t.kind === 'image') return applyImageTrigger(images, t);
  const pattern = triggerPattern(t, c, h, w);
  return noGrad(() => scope(() => {
    if (t.kind === 'blend') {
      const noise = tensor(pattern, [1, c, h, w]).to('float32');
      return images.to('float32').mul(1 - t.alpha).add(noise.mul(t.alpha)).round().clamp(0, 255).to('uint8');
    }
    const out = images.clone();
    const k = t.size;
    const patch = tensor(pattern, [c, k, k]);
    if (t.position === 'fixed') {
      const [dx, dy] = t.offset ?? [0, 0];
      out.narrow(2, h - k - dy, k).narrow(3, w - k - dx, k).copy_(patch);
    } else {
      for (let i = 0; i < n; i++) {
        const y = rng.int(h - k + 1), x = rng.int(w - k + 1);
        out.select(0, i).narrow(1, y, k).narrow(2, x, k).copy_(patch);
      }
    }
    return out;
  }));
}
