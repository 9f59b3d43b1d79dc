// CIFAR-10 and CIFAR-100 binary versions: records of [label(s), 3072 bytes of R, G, B planes].
import * as fs from 'fs';
import { readFileNamed } from '../util/files';

/** CIFAR-10 and CIFAR-100 splits hold 50,000 (train) or 10,000 (test) records. */
export const CIFAR_MAX_RECORDS = 60000;

export interface CifarArrays { images: Uint8Array; labels: Uint8Array; n: number }

/**
 * Reads CIFAR binary batch files. CIFAR-10 records hold 1 label byte; CIFAR-100 records hold a coarse
 * then a fine label byte (`fine` picks which). Errors name the file and what is wrong.
 */
export function readCifarBinary(files: string[], kind: 'cifar10' | 'cifar100', fine = true): CifarArrays {
  const labelBytes = kind === 'cifar10' ? 1 : 2;
  const recordLen = labelBytes + 3072;
  const maxLabels = kind === 'cifar10' ? [9] : [19, 99];
  const labelName = kind === 'cifar10' ? ['label'] : ['coarse label', 'fine label'];
  // sizes first (from stat), so a huge or odd-sized file is refused before anything is read
  const counts = files.map((f) => {
    let size: number;
    try {
      size = fs.statSync(f).size;
    } catch (e) {
      throw new Error(`cannot read ${f}: ${(e as Error).message}`);
    }
    if (size === 0 || size % recordLen !== 0)
      throw new Error(`${f}: ${size} bytes is not a whole number of ${recordLen}-byte ${kind} records (truncated or wrong file?)`);
    if (size / recordLen > CIFAR_MAX_RECORDS) throw new Error(`${f}: ${size / recordLen} records, more than a ${kind} split holds (at most ${CIFAR_MAX_RECORDS})`);
    return size / recordLen;
  });
  const n = counts.reduce((a, b) => a + b, 0);
  if (n > CIFAR_MAX_RECORDS) throw new Error(`${files.join(', ')}: ${n} records in all, more than a ${kind} split holds (at most ${CIFAR_MAX_RECORDS})`);
  const images = new Uint8Array(n * 3072), labels = new Uint8Array(n);
  let k = 0;
  files.forEach((f, fi) => {
    const b = readFileNamed(f);
    if (b.length !== counts[fi] * recordLen) throw new Error(`${f}: changed size while being read`);
    for (let off = 0; off < b.length; off += recordLen, k++) {
      for (let j = 0; j < labelBytes; j++)
        if (b[off + j] > maxLabels[j]) throw new Error(`${f}: record ${off / recordLen} has ${labelName[j]} ${b[off + j]}, outside 0..${maxLabels[j]}`);
      labels[k] = b[off + (labelBytes === 2 && fine ? 1 : 0)];
      images.set(b.subarray(off + labelBytes, off + recordLen), k * 3072);
    }
  });
  return { images, labels, n };
}
