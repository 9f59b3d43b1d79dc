// The defender's own clean images: a folder in torchvision's ImageFolder layout or a NumPy .npz with
// `x` and `y`, read into an ImageSet and checked against what the model expects.
import * as fs from 'fs';
import * as path from 'path';
import { readZip } from '../torch/serialization/zip';
import { Tensor, tensor } from '../torch';
import { readFileNamed } from '../util/files';
import type { ImageChunks, ImageSet } from './image-set';
import { assertTestSetAllowed } from './test-set-lock';
import { decodeImage, toChannels } from './image-decode';
import { ImageTransform, transformImage } from './transforms';
import { stratifiedDraw } from './split';
import { NPY_MAX_HEADER_BYTES, NPY_PREAMBLE, NpyHeader, npyHeaderLength, npyIntegers, parseNpy, parseNpyHeader } from './npy';

/** What the model takes: channels 1 (read as PIL's 'L') or 3 ('RGB'), square images of `size`, `classes` labels. */
export interface ImageExpect { channels: number; size: number; classes: number }

/** A seeded class-stratified draw of `size` of the images (split.ts's stratifiedDraw): only those are decoded. */
export interface ImageDraw { size: number; seed: number }

export interface UserImageLimits {
  /** most bytes of decoded images (N * C * H * W) */
  maxBytes?: number;
  /** most files one image may take on disk */
  maxFileBytes?: number;
}

/** 256 MiB of uint8 pixels: 85k CIFAR-sized images, more than a defender's clean split needs. */
export const USER_IMAGES_MAX_BYTES = 256 << 20;
const MAX_FILE_BYTES = 64 << 20;
/** Most image files a folder may list when a draw picks from it (their names only are held). */
export const MAX_LISTED_FILES = 2_000_000;
const MAX_DEPTH = 8;

/** torchvision.datasets.folder.IMG_EXTENSIONS; compared lower-cased, as its has_file_allowed_extension. */
export const IMG_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'];

/** Python's sorted() on str: code-point order (JavaScript's default sort compares UTF-16 units). */
export function codePointCompare(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0)!), y = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** A folder (ImageFolder layout) or a .npz file, by what `p` is; with `draw`, a draw of its images. */
export function readUserImages(p: string, expect: ImageExpect, limits: UserImageLimits = {}, transform: ImageTransform = {}, draw?: ImageDraw): ImageSet {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    throw new Error(`cannot read clean images at ${p}: ${(e as Error).message}`);
  }
  if (st.isDirectory()) return readImageFolder(p, expect, limits, transform, draw);
  if (p.toLowerCase().endsWith('.npz')) {
    if (transform.resize !== undefined || transform.centerCrop !== undefined) throw new Error(`${p}: --resize and --center-crop apply to a folder of image files; a .npz's arrays are read as they are (resize them beforehand)`);
    const all = readNpzImages(p, expect, limits);
    if (!draw) return all;
    const labels = all.labels.toList() as number[];
    const idx = drawn(labels, expect.classes, draw, p);
    const t = tensor(idx, [idx.length]).long();
    const set = { images: all.images.indexSelect(0, t), labels: all.labels.indexSelect(0, t), classes: all.classes };
    for (const x of [t, all.images, all.labels]) x.dispose();
    return set;
  }
  throw new Error(`${p}: clean images must be a folder of class subfolders (torchvision ImageFolder layout) or a .npz file with x and y`);
}

/** Class subfolder names, sorted as torchvision's find_classes (sorted(os.scandir) names, directories only). */
export function imageFolderClasses(dir: string): string[] {
  const names = readDir(dir).filter((e) => isDir(path.join(dir, e))).sort(codePointCompare);
  if (names.length === 0) throw new Error(`${dir}: no class subfolders (expected the ImageFolder layout: ${dir}/<class>/<image>.png)`);
  return names;
}

function readDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    throw new Error(`cannot read ${dir}: ${(e as Error).message}`);
  }
}

/** Directories and links to them (os.walk(followlinks=True) and os.scandir's is_dir() follow links). */
function isDir(p: string): boolean {
  try { return fs.statSync(p).isDirectory(); } catch { return false; }
}

/** The files of one class as torchvision's make_dataset lists them: sorted(os.walk(...)), then sorted names; null past maxFiles. */
function classFiles(root: string, maxFiles: number): string[] | null {
  const walked: [string, string[]][] = [];
  const visit = (dir: string, depth: number): void => {
    if (depth > MAX_DEPTH) throw new Error(`${dir}: folders nested more than ${MAX_DEPTH} deep (a link loop?)`);
    const names = readDir(dir);
    walked.push([dir, names.filter((n) => !isDir(path.join(dir, n)) && IMG_EXTENSIONS.some((e) => n.toLowerCase().endsWith(e))).sort(codePointCompare)]);
    for (const n of names) if (isDir(path.join(dir, n))) visit(path.join(dir, n), depth + 1);
  };
  visit(root, 0);
  walked.sort((a, b) => codePointCompare(a[0], b[0]));
  const files = walked.flatMap(([dir, names]) => names.map((n) => path.join(dir, n)));
  return files.length > maxFiles ? null : files;
}

/** The indices of `draw` among images of these labels, checked against their number. */
function drawn(labels: number[], classes: number, draw: ImageDraw, source: string): Int32Array {
  if (!Number.isInteger(draw.size) || draw.size < 1) throw new Error(`${source}: the draw's size must be an integer >= 1, got ${draw.size}`);
  if (draw.size > labels.length) throw new Error(`${source}: a draw of ${draw.size} images, more than its ${labels.length}`);
  return stratifiedDraw(labels, classes, draw.size, draw.seed);
}

/**
 * An ImageFolder: `dir/<class>/**\/<file>` with torchvision's extensions (other files are skipped, as
 * torchvision does), label = index of the class folder in code-point order. Every image must be a PNG
 * or JPEG of expect.size x expect.size; it is converted to expect.channels as PIL's convert('L'/'RGB').
 * The number of class folders must equal expect.classes. With `draw`, only the drawn files are read:
 * memory follows the draw's size, not the folder's.
 */
export function readImageFolder(dir: string, expect: ImageExpect, limits: UserImageLimits = {}, transform: ImageTransform = {}, draw?: ImageDraw): ImageSet {
  const per = expect.channels * expect.size * expect.size;
  const maxImages = Math.floor((limits.maxBytes ?? USER_IMAGES_MAX_BYTES) / per);
  const limit = draw ? `${MAX_LISTED_FILES} files, the most a draw lists`
    : `${maxImages} images of ${expect.size}x${expect.size}x${expect.channels}, the limit on clean images held at once; give a draw of them (--clean-size)`;
  let { files, labels } = folderListing(dir, expect, draw ? MAX_LISTED_FILES : maxImages, limit);
  if (draw) {
    const idx = drawn(labels, expect.classes, draw, dir);
    if (idx.length > maxImages) throw new Error(`${dir}: a draw of ${idx.length} images of ${expect.size}x${expect.size}x${expect.channels} is more than the limit on clean images (${maxImages} of them)`);
    files = Array.from(idx, (i) => files[i]);
    labels = Array.from(idx, (i) => labels[i]);
  }
  const data = readFiles(files, expect, limits, transform);
  return {
    images: tensor(data, [files.length, expect.channels, expect.size, expect.size]),
    labels: tensor(BigInt64Array.from(labels, BigInt), [files.length]),
    classes: expect.classes,
  };
}

/**
 * An ImageFolder as readImageFolder reads it, decoded a chunk at a time when the chunks are iterated:
 * for evaluating on a test folder of any size in the memory of one chunk.
 */
export function imageFolderChunks(dir: string, expect: ImageExpect, limits: UserImageLimits = {}, transform: ImageTransform = {}): ImageChunks {
  const { files, labels } = folderListing(dir, expect, MAX_LISTED_FILES, `${MAX_LISTED_FILES} files, the most a test folder lists`);
  const { channels, size } = expect;
  return {
    kind: 'chunks', shape: [files.length, channels, size, size], labels: Int32Array.from(labels), classes: expect.classes,
    *chunks(n: number) {
      for (let s = 0; s < files.length; s += n) {
        const part = files.slice(s, s + n);
        yield {
          images: tensor(readFiles(part, expect, limits, transform), [part.length, channels, size, size]),
          labels: tensor(BigInt64Array.from(labels.slice(s, s + n), BigInt), [part.length]),
          classes: expect.classes,
        };
      }
    },
  };
}

/** The folder's image files and labels, in torchvision's order, checked against the model's classes; at most maxFiles (`limit` says why). */
function folderListing(dir: string, expect: ImageExpect, maxFiles: number, limit: string): { files: string[]; labels: number[] } {
  checkExpect(expect, dir);
  const classes = imageFolderClasses(dir);
  if (classes.length !== expect.classes)
    throw new Error(`${dir}: ${classes.length} class folders (${brief(classes)}), the model has ${expect.classes} classes`);
  const files: string[] = [], labels: number[] = [];
  const empty: string[] = [];
  classes.forEach((c, label) => {
    const found = classFiles(path.join(dir, c), maxFiles - files.length);
    if (!found) throw new Error(`${dir}: more than ${maxFiles} images (counted up to its class folder ${c}): ${limit}`);
    if (found.length === 0) empty.push(c);
    for (const f of found) { files.push(f); labels.push(label); }
  });
  if (empty.length) throw new Error(`${dir}: no image files (${IMG_EXTENSIONS.join(' ')}) for the classes ${empty.join(', ')}`);
  return { files, labels };
}

/** The pixels of these files, one after another ([N, C, S, S] uint8). */
function readFiles(files: string[], expect: ImageExpect, limits: UserImageLimits, transform: ImageTransform): Uint8Array {
  const per = expect.channels * expect.size * expect.size;
  const data = new Uint8Array(files.length * per);
  const maxFileBytes = limits.maxFileBytes ?? MAX_FILE_BYTES;
  files.forEach((f, i) => {
    const size = fileSize(f);
    if (size > maxFileBytes) throw new Error(`${f}: ${size} bytes, more than the ${maxFileBytes}-byte limit for one image`);
    data.set(imageOf(f, expect, transform), i * per);
  });
  return data;
}

/** Most pixels of one image decoded before --resize/--center-crop (a 12-megapixel photo is 12e6). */
const MAX_DECODE_PIXELS = 50e6;

/** One file's pixels, [C, S, S] for the model: exactly that size, or made so by the transform. */
function imageOf(f: string, expect: ImageExpect, t: ImageTransform): Uint8Array {
  const channels = expect.channels as 1 | 3;
  if (t.resize === undefined && t.centerCrop === undefined)
    return toChannels(decodeImage(readFileNamed(f), f, { expect: { width: expect.size, height: expect.size }, maxPixels: expect.size * expect.size }), channels);
  const img = decodeImage(readFileNamed(f), f, { maxPixels: MAX_DECODE_PIXELS });
  const out = transformImage({ data: toChannels(img, channels), channels, height: img.height, width: img.width }, t, f);
  if (out.height !== expect.size || out.width !== expect.size)
    throw new Error(`${f}: ${img.width}x${img.height} image is ${out.width}x${out.height} after${t.resize === undefined ? '' : ` --resize ${t.resize}`}${t.centerCrop === undefined ? '' : ` --center-crop ${t.centerCrop}`}, the model expects ${expect.size}x${expect.size}`);
  return out.data;
}

function fileSize(f: string): number {
  try { return fs.statSync(f).size; } catch (e) { throw new Error(`cannot read ${f}: ${(e as Error).message}`); }
}

function brief(names: string[]): string {
  return names.length > 12 ? `${names.slice(0, 12).join(', ')}, ... ${names.length - 12} more` : names.join(', ');
}

function checkExpect(e: ImageExpect, source: string): void {
  if (e.channels !== 1 && e.channels !== 3) throw new Error(`${source}: the model expects ${e.channels} channels; clean images are read as 1 (L) or 3 (RGB)`);
  if (!Number.isInteger(e.size) || e.size < 1 || !Number.isInteger(e.classes) || e.classes < 1)
    throw new Error(`${source}: bad expectation (size ${e.size}, classes ${e.classes})`);
}

/**
 * A .npz (np.savez or np.savez_compressed) with `x`: uint8 (N, H, W) or (N, H, W, C), channels last
 * as numpy images are, and `y`: N integer labels in 0..classes-1. C must equal expect.channels
 * ((N, H, W) means one channel); no conversion is made between channel counts.
 */
export function readNpzImages(file: string, expect: ImageExpect, limits: UserImageLimits = {}): ImageSet {
  return readNpz(file, expect, limits, []).set;
}

/**
 * Triggered images as the defender's attack left them: a .npz with `x` (as readNpzImages), `y` the class
 * each image is sent to (the attack's target), and optionally `y_true`, each image's true class.
 */
export interface TriggeredImageSet { images: Tensor; targetLabels: Tensor; trueLabels: Tensor | null }

export function readTriggeredNpz(file: string, expect: ImageExpect, limits: UserImageLimits = {}): TriggeredImageSet {
  assertTestSetAllowed(`triggered images ${file}`);
  const { set, extra } = readNpz(file, expect, limits, ['y_true'], true);
  return { images: set.images, targetLabels: set.labels, trueLabels: extra.y_true ?? null };
}

/** x, y and the optional label arrays `extra` (each N integers in 0..classes-1) of a .npz, every header checked first. */
function readNpz(file: string, expect: ImageExpect, limits: UserImageLimits, extra: string[], extraOptional = false): { set: ImageSet; extra: Record<string, Tensor> } {
  checkExpect(expect, file);
  const maxBytes = limits.maxBytes ?? USER_IMAGES_MAX_BYTES;
  const size = fileSize(file);
  // np.savez_compressed: deflated entries bounded by the limit; a stored file cannot exceed it by much
  if (size > (2 + extra.length) * maxBytes + (1 << 20)) throw new Error(`${file}: ${size} bytes, more than the limit on clean images (${maxBytes} bytes of pixels)`);
  // a first bound on any entry (labels may be int64, 8 bytes an image); each array's exact size is
  // checked from its header below
  const zip = readZip(readFileNamed(file), file, { deflate: { maxBytes: 8 * maxBytes + NPY_MAX_HEADER_BYTES } });
  const labelArrays = ['y', ...extra.filter((k) => !extraOptional || zip.entries.has(`${k}.npy`))];
  for (const k of ['x', ...labelArrays]) if (!zip.entries.has(`${k}.npy`)) throw new Error(`${file}: no array '${k}' (it holds ${[...zip.entries.keys()].map((n) => n.replace(/\.npy$/, '')).join(', ') || 'nothing'}); save with np.savez(path, x=images, y=labels${extra.map((e) => `, ${e}=...`).join('')})`);
  // every header is read from a prefix and checked, against the limit, the model and the others,
  // before any array is inflated: a small file that declares (or deflates to) gigabytes costs nothing
  const header = (k: string, limit: number): NpyHeader => {
    const name = `${k}.npy`, source = `${file}: ${k}`;
    const h = parseNpyHeader(zip.readPrefix(name, npyHeaderLength(zip.readPrefix(name, NPY_PREAMBLE), source)), source, limit);
    const declared = zip.entries.get(name)!.size;
    if (h.dataOffset + h.dataBytes !== declared)
      throw new Error(`${source}: .npy shape (${h.shape.join(', ')}) x ${h.descr} needs ${h.dataBytes} bytes of data, the array holds ${declared - h.dataOffset} (its zip entry's declared size)`);
    return h;
  };
  const xh = header('x', maxBytes);
  if (xh.descr !== '|u1') throw new Error(`${file}: x has dtype '${xh.descr}', expected uint8 ('|u1') pixels in 0..255`);
  const s = xh.shape;
  if (s.length !== 3 && s.length !== 4) throw new Error(`${file}: x has shape (${s.join(', ')}), expected (N, H, W) or (N, H, W, C)`);
  const [n, h, w] = s, c = s.length === 4 ? s[3] : 1;
  if (h !== expect.size || w !== expect.size) throw new Error(`${file}: x images are ${h}x${w} (shape (${s.join(', ')})), the model expects ${expect.size}x${expect.size}`);
  if (c !== expect.channels) throw new Error(`${file}: x has ${c} channel${c === 1 ? '' : 's'} (shape (${s.join(', ')}), channels last), the model expects ${expect.channels}`);
  if (n < 1) throw new Error(`${file}: x holds no images`);
  for (const k of labelArrays) {
    const lh = header(k, 8 * maxBytes);
    if (lh.descr === '|b1') throw new Error(`${file}: ${k} has dtype bool, expected integer labels`);
    if (lh.shape.length !== 1 || lh.shape[0] !== n) throw new Error(`${file}: ${k} has shape (${lh.shape.join(', ')}), expected (${n},): one label per image of x`);
  }
  const labels = (k: string): Tensor => {
    const v = npyIntegers(parseNpy(zip.read(`${k}.npy`), `${file}: ${k}`, 8 * maxBytes), `${file}: ${k}`);
    const bad = v.findIndex((l) => l < 0 || l >= expect.classes);
    if (bad >= 0) throw new Error(`${file}: ${k}[${bad}] = ${v[bad]} is outside the model's classes 0..${expect.classes - 1}`);
    return tensor(BigInt64Array.from(v, BigInt), [n]);
  };
  const x = parseNpy(zip.read('x.npy'), `${file}: x`, maxBytes);
  const y = labels('y');
  const more: Record<string, Tensor> = {};
  for (const k of labelArrays.slice(1)) more[k] = labels(k);
  // HWC -> CHW
  const per = c * h * w, data = new Uint8Array(n * per);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < h * w; p++) for (let k = 0; k < c; k++) data[i * per + k * h * w + p] = x.data[i * per + p * c + k];
  return { set: { images: tensor(data, [n, c, h, w]), labels: y, classes: expect.classes }, extra: more };
}

