// The defender's clean images: a run's clean split, a seeded class-stratified draw from a dataset's
// training split, or images the caller already holds.
import { tensor } from '../torch';
import { DatasetName, DatasetSpec, ImageSet, loadImageSet } from '../data/datasets';
import type { Images } from '../data/image-set';
import { stratifiedDraw } from '../data/split';
import type { ImageTransform } from '../data/transforms';
import type { ImageDraw } from '../data/user-images';

export { stratifiedDraw } from '../data/split';

export type CleanSource =
  /** the clean split recorded in a training run (attack.json's cleanIndices into the training split) */
  | { kind: 'run'; dataset: DatasetName; indices: number[] }
  /** `size` images of the dataset's training split, drawn seeded and stratified by class */
  | { kind: 'split'; dataset: DatasetSpec; size: number; seed: number }
  /** images the caller loaded (uint8 [N, C, H, W], int64 labels) */
  | UserImages & { set: ImageSet };

/** The user's labelled images: held in memory, or (a test folder) read in chunks. */
export interface UserImages {
  kind: 'images'; set: Images;
  /** where from, for the report */
  path?: string;
  /** how the files were resized and cropped as read */
  transform?: ImageTransform;
  /** the draw of the files' images that `set` is */
  draw?: ImageDraw;
}

/** A clean-data problem, with the field of the source it concerns (the CLI names its flag). */
export class CleanDataError extends Error {
  constructor(readonly field: 'size' | 'seed' | 'indices', message: string) { super(message); }
}

/** The source's images, as a new ImageSet the caller disposes (for 'images', the caller's own set). */
export function loadCleanData(source: CleanSource, dataDir?: string): ImageSet {
  if (source.kind === 'images') return source.set;
  const train = loadImageSet(source.dataset, 'train', dataDir);
  const n = train.labels.numel;
  let indices: ArrayLike<number>;
  if (source.kind === 'run') {
    const bad = source.indices.find((i) => !Number.isInteger(i) || i < 0 || i >= n);
    if (bad !== undefined) throw new CleanDataError('indices', `attack.json: clean index ${bad} is outside the training set (0..${n - 1})`);
    indices = source.indices;
  } else {
    if (!Number.isInteger(source.size) || source.size < 1) throw new CleanDataError('size', `clean size must be an integer >= 1, got ${source.size}`);
    if (source.size > n) throw new CleanDataError('size', `clean size ${source.size} is larger than the ${source.dataset} training split (${n} images)`);
    if (!Number.isInteger(source.seed)) throw new CleanDataError('seed', `clean seed must be an integer, got ${source.seed}`);
    indices = stratifiedDraw(train.labels.toList() as number[], train.classes, source.size, source.seed);
  }
  const idx = tensor(Float64Array.from(indices), [indices.length]).long();
  const clean = { images: train.images.indexSelect(0, idx), labels: train.labels.indexSelect(0, idx), classes: train.classes };
  for (const t of [idx, train.images, train.labels]) t.dispose();
  return clean;
}
