// CIFAR-10 and CIFAR-100 binary versions: records of [label(s), 3072 bytes of R, G, B planes].
import { readFileNamed } from '../util/files';

export interface CifarArrays { images: Uint8Array; labels: Uint8Array; n: number }

/**
 * Reads CIFAR binary batch files. CIFAR-10 records hold 1 label byte; CIFAR-100 records hold a coarse
 * then a fine label byte (`fine` picks which). Errors name the file and what is wrong.
 */
export function readCifarBinary(files: string[], kind: 'cifar10' | 'cifar100', fine = true): CifarArrays {
  const labelBytes = kind === 'cifar10' ? 1 : 2;
  const recordLen = labelBytes + 3072;
  const maxLabel = kind === 'cifar10' ? 9 : fine ? 99 : 19;
  const bufs = files.map((f) => {
    const b = readFileNamed(f);
    if (b.length === 0 || b.length % recordLen !== 0)
      throw new Error(`${f}: ${b.length} bytes is not a whole number of ${recordLen}-byte ${kind} records (truncated or wrong file?)`);
    return b;
  });
  const n = bufs.reduce((a, b) => a + b.length / recordLen, 0);
  const images = new Uint8Array(n * 3072), labels = new Uint8Array(n);
  let k = 0;
  bufs.forEach((b, fi) => {
    for (let off = 0; off < b.length; off += recordLen, k++) {
      const label = b[off + (labelBytes === 2 && fine ? 1 : 0)];
      if (label > maxLabel) throw new Error(`${files[fi]}: record ${off / recordLen} has label ${label}, outside 0..${maxLabel}`);
      labels[k] = label;
      images.set(b.subarray(off + labelBytes, off + recordLen), k * 3072);
    }
  });
  return { images, labels, n };
}
