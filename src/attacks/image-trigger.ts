// A trigger the defender describes with an image file: a pattern t (uint8 [C, H, W], the images'
// size), a per-pixel weight m in 0..255 and an opacity alpha; x' = round(x + (alpha m / 255) (t - x)),
// rounded half to even, per channel. The spec carries the decoded pixels (base64), so it stays JSON.
import { z } from 'zod';
import { noGrad, scope, Tensor, tensor } from '../torch';
import { decodeImage, DecodedImage, toChannels } from '../data/image-decode';
import { readFileNamed } from '../util/files';

export const IMAGE_TRIGGER_SCHEMA = z.object({
  kind: z.literal('image'),
  channels: z.number().int(),
  height: z.number().int(),
  width: z.number().int(),
  /** uint8 [channels, height, width], base64 */
  pattern: z.string(),
  /** uint8 [height, width] weights (255 = the trigger's pixel replaces the image's), base64; absent = 255 everywhere */
  mask: z.string().optional(),
  /** opacity in (0, 1]; 1 stamps (where the mask is 255) */
  alpha: z.number(),
  /** where the pattern (and mask) came from, for descriptions */
  source: z.string().optional(),
});
export type ImageTriggerSpec = z.infer<typeof IMAGE_TRIGGER_SCHEMA>;

function bytes(b64: string, n: number, what: string): Uint8Array {
  const b = Buffer.from(b64, 'base64');
  if (b.length !== n) throw new Error(`trigger: image ${what} holds ${b.length} bytes, expected ${n}`);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

export function validateImageTrigger(t: ImageTriggerSpec, height: number, width: number, channels?: number): void {
  if (t.height !== height || t.width !== width) throw new Error(`trigger: image trigger is ${t.width}x${t.height}, the images are ${width}x${height}`);
  if (channels !== undefined && t.channels !== channels) throw new Error(`trigger: image trigger has ${t.channels} channels, the images ${channels}`);
  if (!(t.alpha > 0 && t.alpha <= 1)) throw new Error(`trigger: alpha must be in (0, 1], got ${t.alpha}`);
  bytes(t.pattern, t.channels * t.height * t.width, 'pattern');
  if (t.mask !== undefined) bytes(t.mask, t.height * t.width, 'mask');
}

/** Pixels the trigger changes at all (mask > 0). */
export function imageTriggerArea(t: ImageTriggerSpec): number {
  if (t.mask === undefined) return t.height * t.width;
  return bytes(t.mask, t.height * t.width, 'mask').reduce((n, v) => n + (v > 0 ? 1 : 0), 0);
}

export function describeImageTrigger(t: ImageTriggerSpec): string {
  const area = imageTriggerArea(t), all = t.height * t.width;
  return `image trigger${t.source ? ` ${t.source}` : ''}, ${t.width}x${t.height}, ${area === all ? 'every pixel' : `${area} of ${all} pixels`}${t.alpha < 1 ? `, alpha ${t.alpha}` : ''}`;
}

/** Triggered copy of uint8 images [N, C, H, W]. */
export function applyImageTrigger(images: Tensor, t: ImageTriggerSpec): Tensor {
  const [, c, h, w] = images.shape;
  validateImageTrigger(t, h, w, c);
  const pattern = bytes(t.pattern, c * h * w, 'pattern');
  const mask = t.mask === undefined ? new Uint8Array(h * w).fill(255) : bytes(t.mask, h * w, 'mask');
  const weight = Float64Array.from(mask, (m) => (t.alpha * m) / 255);
  return noGrad(() => scope(() => {
    const x = images.to('float64');
    const pat = tensor(Float64Array.from(pattern), [1, c, h, w]);
    const wt = tensor(weight, [1, 1, h, w]);
    return x.add(pat.sub(x).mul(wt)).round().clamp(0, 255).to('uint8');
  }));
}

/** Mask weights of a mask image: 255 where any of R, G, B is nonzero and the pixel is not fully transparent, else 0. */
export function maskFromImage(img: DecodedImage): Uint8Array {
  const n = img.width * img.height, px = img.rgba, out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = px[4 * i + 3] > 0 && (px[4 * i] | px[4 * i + 1] | px[4 * i + 2]) > 0 ? 255 : 0;
  return out;
}

/** The images' channels (1 or 3) and side. */
export interface ImageTriggerExpect { channels: number; size: number }

/**
 * The spec for `--trigger-image` (PNG or JPEG of the images' size, converted to their channels as
 * PIL's convert), `--trigger-mask` (optional, PNG or JPEG: a pixel is part of the trigger when it is
 * not black) and `alpha` (default 1). Without a mask, the trigger image's own alpha channel weighs
 * each pixel (PNG compositing: transparent = untouched, opaque = replaced); without either, every
 * pixel is the trigger's, so a trigger image that is mostly background needs a mask or transparency.
 */
export function imageTriggerFromFiles(image: string, mask: string | undefined, alpha: number | undefined, expect: ImageTriggerExpect): ImageTriggerSpec {
  if (expect.channels !== 1 && expect.channels !== 3) throw new Error(`${image}: image triggers are read as 1 (L) or 3 (RGB) channels, the images have ${expect.channels}`);
  const size = { width: expect.size, height: expect.size };
  const pat = decodeImage(readFileNamed(image), image, { expect: size, maxPixels: expect.size * expect.size });
  let weights: Uint8Array | undefined;
  if (mask !== undefined) weights = maskFromImage(decodeImage(readFileNamed(mask), mask, { expect: size, maxPixels: expect.size * expect.size }));
  else if (pat.hasAlpha) weights = Uint8Array.from({ length: pat.width * pat.height }, (_, i) => pat.rgba[4 * i + 3]);
  if (weights && !weights.some((v) => v > 0)) throw new Error(`${mask ?? image}: the trigger ${mask ? 'mask' : 'image'} selects no pixel (${mask ? 'all black' : 'fully transparent'})`);
  const a = alpha ?? 1;
  if (!(a > 0 && a <= 1)) throw new Error(`trigger alpha must be in (0, 1], got ${alpha}`);
  const spec: ImageTriggerSpec = {
    kind: 'image', channels: expect.channels, height: expect.size, width: expect.size,
    pattern: Buffer.from(toChannels(pat, expect.channels as 1 | 3)).toString('base64'), alpha: a,
    source: mask ? `${image} (mask ${mask})` : image,
  };
  if (weights && weights.some((v) => v !== 255)) spec.mask = Buffer.from(weights).toString('base64');
  return spec;
}
