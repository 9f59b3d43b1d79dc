// The defender's own inputs given as files: clean images (an ImageFolder folder or a .npz) as a clean
// source, and a trigger image (with an optional mask) as the attack ASR is measured with; both checked
// against what the dataset's model takes.
import * as path from 'path';
import { AttackSpec, attackIssues, DEFAULT_ATTACK } from '../attacks/poison';
import { imageTriggerFromFiles } from '../attacks/image-trigger';
import { datasetInfo, DatasetSpec } from '../data/datasets';
import * as fs from 'fs';
import { ImageDraw, imageFolderChunks, readTriggeredNpz, readUserImages, TriggeredImageSet, UserImageLimits } from '../data/user-images';
import { formatIssues } from '../util/validation';
import { CleanSource, UserImages } from './clean-data';
import type { ImageTransform } from '../data/transforms';
import type { ImageChunks, ImageSet } from '../data/image-set';

/**
 * The images at `file` (folder or .npz) as a clean source for a model of `dataset`, or `draw` of them
 * (a folder's other files are never decoded); the caller disposes source.set.
 */
export function userCleanSource(file: string, dataset: DatasetSpec, limits?: UserImageLimits, transform?: ImageTransform, draw?: ImageDraw): Extract<CleanSource, { kind: 'images' }> {
  const { channels, size, classes } = datasetInfo(dataset);
  return { ...imagesSource(file, readUserImages(file, { channels, size, classes }, limits, transform, draw), transform), ...(draw ? { draw } : {}) };
}

/** The user's images as a source: where they are, and the transform when one was given. */
function imagesSource<S extends ImageSet | ImageChunks>(file: string, set: S, transform?: ImageTransform): { kind: 'images'; set: S; path: string; transform?: ImageTransform } {
  const given = transform && (transform.resize !== undefined || transform.centerCrop !== undefined);
  return { kind: 'images', set, path: path.resolve(file), ...(given ? { transform } : {}) };
}

/**
 * The labelled images at `file` to evaluate on: a folder is listed and checked now and decoded a chunk
 * at a time as it is evaluated on (any number of images in the memory of a chunk); a .npz is read.
 */
export function userTestImages(file: string, dataset: DatasetSpec, transform?: ImageTransform): UserImages {
  let folder = false;
  try { folder = fs.statSync(file).isDirectory(); } catch { /* the reader names what is wrong */ }
  if (!folder) return userCleanSource(file, dataset, undefined, transform);
  const { channels, size, classes } = datasetInfo(dataset);
  return imagesSource(file, imageFolderChunks(file, { channels, size, classes }, {}, transform), transform);
}

/** Triggered images at `file` (.npz: x, y the target of each image, optionally y_true) for a model of `dataset`. */
export function userTriggeredImages(file: string, dataset: DatasetSpec, limits?: UserImageLimits): { set: TriggeredImageSet; path: string } {
  if (!file.toLowerCase().endsWith('.npz')) throw new Error(`${file}: triggered images are read from a .npz with x (uint8 N,H,W[,C]), y (each image's target class) and optionally y_true`);
  const { channels, size, classes } = datasetInfo(dataset);
  return { set: readTriggeredNpz(file, { channels, size, classes }, limits), path: path.resolve(file) };
}

export interface TriggerFiles {
  /** PNG or JPEG of the dataset's image size: the trigger's pixels */
  image: string;
  /** PNG or JPEG: the pixels that are not black are the trigger's (default: the image's alpha channel, else every pixel) */
  mask?: string;
  /** opacity in (0, 1] (default 1: the trigger's pixels replace the image's) */
  alpha?: number;
  /** the class triggered images are sent to (all-to-one), default 0 */
  target?: number;
  allToAll?: boolean;
}

/**
 * The attack a trigger image describes, for ASR on `dataset`: files resolved (the report names them),
 * poison ratio and seed at their defaults (they play no part in measuring ASR); `name` turns an
 * attack field ('target', 'trigger') into what the caller calls it in errors.
 */
export function imageTriggerAttack(f: TriggerFiles, dataset: DatasetSpec, name = (field: string): string => `'${field}'`): AttackSpec {
  const { channels, size } = datasetInfo(dataset);
  const trigger = imageTriggerFromFiles(path.resolve(f.image), f.mask === undefined ? undefined : path.resolve(f.mask), f.alpha, { channels, size });
  const attack: AttackSpec = { ...DEFAULT_ATTACK, trigger, target: f.target ?? 0, mode: f.allToAll ? 'all-to-all' : 'all-to-one' };
  const issues = attackIssues(attack, dataset);
  if (issues.length) throw new Error(formatIssues(issues, name));
  return attack;
}
