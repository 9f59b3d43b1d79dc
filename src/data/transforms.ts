// torchvision's usual preprocessing of a loaded image, named as its flags: Resize(n) (the shorter side
// to n, the longer in proportion, antialiased bilinear) then CenterCrop(m). On uint8 [C, H, W] images,
// through libtorch's own antialiased bilinear kernel (aten::_upsample_bilinear2d_aa, what
// torchvision.transforms.functional.resize(tensor, antialias=True) calls), rounded back to uint8.
import { noGrad, op, scope, tensor } from '../torch';

export interface ImageTransform {
  /** the shorter side after resizing (torchvision Resize(int)) */
  resize?: number;
  /** the side of the centred square kept (torchvision CenterCrop(int)), after resizing */
  centerCrop?: number;
}

export interface RawImage { data: Uint8Array; channels: number; height: number; width: number }

const upsampleAa = op('aten::_upsample_bilinear2d_aa');

/** torchvision 0.14's _compute_resized_output_size for an int size: the shorter side to `size`. */
export function resizedSize(height: number, width: number, size: number): [number, number] {
  const [short, long] = height <= width ? [height, width] : [width, height];
  if (short === size) return [height, width];
  const newLong = Math.floor((size * long) / short);
  return height <= width ? [size, newLong] : [newLong, size];
}

/** Resize then centre-crop one image; `source` names it in errors. */
export function transformImage(img: RawImage, t: ImageTransform, source: string): RawImage {
  let out = img;
  if (t.resize !== undefined) {
    const [h, w] = resizedSize(img.height, img.width, t.resize);
    if (h !== img.height || w !== img.width) {
      const data = noGrad(() => scope(() => {
        const x = tensor(img.data, [1, img.channels, img.height, img.width]).to('float32');
        const y = upsampleAa(x, [h, w], false, null, null) as ReturnType<typeof tensor>;
        return y.round().clamp(0, 255).to('uint8').contiguous().toArray() as Uint8Array;
      }));
      out = { data: Uint8Array.from(data), channels: img.channels, height: h, width: w };
    }
  }
  if (t.centerCrop !== undefined) {
    const s = t.centerCrop;
    if (s > out.height || s > out.width) throw new Error(`${source}: a ${s}x${s} centre crop of a ${out.height}x${out.width} image (after --resize) does not fit`);
    // torchvision: top = int(round((H - s) / 2)), Python's round (half to even)
    const top = roundHalfEven((out.height - s) / 2), left = roundHalfEven((out.width - s) / 2);
    const data = new Uint8Array(out.channels * s * s);
    for (let c = 0; c < out.channels; c++)
      for (let y = 0; y < s; y++) {
        const from = c * out.height * out.width + (top + y) * out.width + left;
        data.set(out.data.subarray(from, from + s), c * s * s + y * s);
      }
    out = { data, channels: out.channels, height: s, width: s };
  }
  return out;
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}
