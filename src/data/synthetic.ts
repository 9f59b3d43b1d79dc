// Synthetic datasets written in the original file formats (IDX, CIFAR binary), for tests and demos:
// class c is a bright bar at a class-specific place plus noise, learnable in seconds.
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { Rng } from '../util/rng';

export function syntheticImages(n: number, channels: number, size: number, classes: number, seed: number): { images: Uint8Array; labels: Uint8Array } {
  const rng = new Rng(seed);
  const images = new Uint8Array(n * channels * size * size), labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = rng.int(classes);
    labels[i] = c;
    const horizontal = c % 2 === 0;
    const at = 2 + Math.floor(((c >> 1) * (size - 8)) / Math.max(1, Math.ceil(classes / 2) - 1));
    for (let ch = 0; ch < channels; ch++)
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const onBar = horizontal ? y >= at && y < at + 3 && x >= 4 && x < size - 8 : x >= at && x < at + 3 && y >= 4 && y < size - 8;
          images[((i * channels + ch) * size + y) * size + x] = onBar ? 160 + rng.int(96) : rng.int(64);
        }
  }
  return { images, labels };
}

export function idxBytes(dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** Writes MNIST-format files (train and t10k, images and labels) into dir. */
export function writeSyntheticIdx(dir: string, o: { train: number; test: number; seed?: number; gzip?: boolean; size?: number }): void {
  fs.mkdirSync(dir, { recursive: true });
  const size = o.size ?? 28;
  for (const [prefix, n, seed] of [['train', o.train, o.seed ?? 1], ['t10k', o.test, (o.seed ?? 1) + 1]] as const) {
    const { images, labels } = syntheticImages(n, 1, size, 10, seed);
    const write = (name: string, b: Buffer): void => {
      if (o.gzip) fs.writeFileSync(path.join(dir, `${name}.gz`), zlib.gzipSync(b));
      else fs.writeFileSync(path.join(dir, name), b);
    };
    write(`${prefix}-images-idx3-ubyte`, idxBytes([n, size, size], images));
    write(`${prefix}-labels-idx1-ubyte`, idxBytes([n], labels));
  }
}

/** Writes CIFAR-10 (5 train batches + test) or CIFAR-100 (train + test) binary files into dir. */
export function writeSyntheticCifar(dir: string, kind: 'cifar10' | 'cifar100', o: { train: number; test: number; seed?: number }): void {
  fs.mkdirSync(dir, { recursive: true });
  const classes = kind === 'cifar10' ? 10 : 100;
  const record = (images: Uint8Array, labels: Uint8Array, from: number, to: number): Buffer => {
    const parts: Buffer[] = [];
    for (let i = from; i < to; i++) {
      const lab = kind === 'cifar10' ? [labels[i]] : [Math.floor(labels[i] / 5), labels[i]];
      parts.push(Buffer.from(lab), Buffer.from(images.subarray(i * 3072, (i + 1) * 3072)));
    }
    return Buffer.concat(parts);
  };
  const tr = syntheticImages(o.train, 3, 32, classes, o.seed ?? 1);
  const te = syntheticImages(o.test, 3, 32, classes, (o.seed ?? 1) + 1);
  if (kind === 'cifar10') {
    const per = Math.ceil(o.train / 5);
    for (let b = 0; b < 5; b++) fs.writeFileSync(path.join(dir, `data_batch_${b + 1}.bin`), record(tr.images, tr.labels, b * per, Math.min(o.train, (b + 1) * per)));
    fs.writeFileSync(path.join(dir, 'test_batch.bin'), record(te.images, te.labels, 0, o.test));
  } else {
    fs.writeFileSync(path.join(dir, 'train.bin'), record(tr.images, tr.labels, 0, o.train));
    fs.writeFileSync(path.join(dir, 'test.bin'), record(te.images, te.labels, 0, o.test));
  }
}
