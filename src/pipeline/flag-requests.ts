// Flags (the command line's, as parsed) -> what `defend` and `eval` run on: a training run of ours, or
// weights with their architecture, clean data (drawn from the dataset's training split, or the
// defender's own images) and the trigger (built-in flags, or a trigger image). Errors name the flags.
import * as path from 'path';
import { AttackSpec } from '../attacks/poison';
import type { Precision } from '../torch/precision';
import { DatasetSpec } from '../data/datasets';
import { ModelName } from '../models';
import { assertFile } from '../util/paths';
import { AttackFlags, attackFlagIssues, attackFromFlags, flagOf } from './attack-spec';
import { CleanSource, UserImages } from './clean-data';
import { DefendRequest, overridesOf } from './defend';
import { DetectRequest } from './detect';
import { parseOverrides } from '../defenses/registry';
import { InputNorm, inputInfo, ModelSource } from './model';
import { runTarget } from './run-dir';
import { imageTriggerAttack, userCleanSource, userTestImages, userTriggeredImages } from './user-inputs';
import { ImageDraw, TriggeredImageSet } from '../data/user-images';
import type { ImageTransform } from '../data/transforms';

/** The defender's own files: clean images and test images (ImageFolder folder or .npz), a trigger image and its mask. */
export interface UserFileFlags extends TransformFlags { clean?: string; test?: string; triggerImage?: string; triggerMask?: string; asrImages?: string }

/** torchvision's Resize(n) and CenterCrop(m) applied to the image files of --clean and --test as they are read. */
export interface TransformFlags { resize?: number; centerCrop?: number }

const transformOf = (f: TransformFlags): ImageTransform => ({ ...(f.resize === undefined ? {} : { resize: f.resize }), ...(f.centerCrop === undefined ? {} : { centerCrop: f.centerCrop }) });

export interface DefendFlags extends Partial<AttackFlags>, UserFileFlags, NormFlags {
  run?: string; weights?: string; model?: ModelName; width?: number; dataset?: DatasetSpec; cleanSize?: number; cleanSeed?: number;
  method: string; set: string[]; lambda?: string; out?: string; valFraction: number; seed?: number; dataDir?: string;
  force: boolean; json: boolean; precision?: Precision;
  /** false with --no-verdict */
  verdict?: boolean;
  /** false with --no-verdict-scan */
  verdictScan?: boolean;
}

export interface EvalFlags extends AttackFlags, UserFileFlags, NormFlags {
  run?: string; weights?: string; dataset: DatasetSpec; dataDir?: string; model: ModelName; width: number; json: boolean; precision?: Precision;
}

/** The normalisation the weights were trained with, as comma-separated lists (without a run). */
export interface NormFlags { normMean?: string; normStd?: string }

/** --norm-mean and --norm-std as the model's input normalisation (both or neither), checked against the dataset. */
export function normOfFlags(f: NormFlags, dataset: DatasetSpec): InputNorm | undefined {
  if (f.normMean === undefined && f.normStd === undefined) return undefined;
  if (f.normMean === undefined || f.normStd === undefined) throw new Error(`${f.normMean === undefined ? '--norm-std' : '--norm-mean'}: give --norm-mean and --norm-std together`);
  const list = (v: string, flag: string): number[] => v.split(',').map((x) => {
    const n = x.trim() === '' ? NaN : Number(x);
    if (!Number.isFinite(n)) throw new Error(`${flag}: '${v}' is not a comma-separated list of numbers`);
    return n;
  });
  const norm = { mean: list(f.normMean, '--norm-mean'), std: list(f.normStd, '--norm-std') };
  try {
    inputInfo({ dataset, norm });
  } catch (e) {
    throw new Error(`--norm-mean/--norm-std: ${(e as Error).message.replace(/^norm: /, '')}`);
  }
  return norm;
}

/** Whether the user gave a flag (not its default): a flag that would be ignored is refused. */
export type Given = (key: string) => boolean;
const typedOf = (f: object): Given => (k) => (f as Record<string, unknown>)[k] !== undefined;

const USER_FILES: (keyof UserFileFlags)[] = ['clean', 'test', 'triggerImage', 'triggerMask', 'asrImages', 'resize', 'centerCrop'];

/** Flags of a built-in trigger and of how it was planted: nothing to do with a trigger image. */
const BUILT_IN_TRIGGER: (keyof AttackFlags)[] = ['triggerSize', 'pattern', 'position', 'offset', 'sigDelta', 'sigFreq', 'wanetK', 'wanetS',
  'wanetGridRescale', 'wanetCrossRatio', 'poisonRatio', 'attackSeed'];

/** The trigger ASR is measured with: --trigger-image [--trigger-mask] [--alpha], the built-in --attack flags, or none. */
export function attackOfFlags(f: Partial<AttackFlags> & UserFileFlags, dataset: DatasetSpec, given: Given = typedOf(f)): AttackSpec | null {
  if (f.asrImages !== undefined) {
    const clash = f.triggerImage !== undefined ? 'triggerImage' : f.triggerMask !== undefined ? 'triggerMask' : f.attack && f.attack !== 'none' && given('attack') ? 'attack'
      : [...BUILT_IN_TRIGGER, 'alpha', 'target', 'allToAll'].find((k) => given(k));
    if (clash) throw new Error(`${flagOf(clash)}: --asr-images gives the triggered images (their targets in y), so no trigger is described by flags; drop one of them`);
    return null;
  }
  if (f.triggerImage === undefined) {
    if (f.triggerMask !== undefined) throw new Error('--trigger-mask: give the trigger itself with --trigger-image <png> too');
    if (!f.attack) return null;
    const a = attackFromFlags(f as AttackFlags);
    const issues = attackFlagIssues(a, dataset);
    if (issues) throw new Error(issues);
    return a;
  }
  if (f.attack && f.attack !== 'none' && given('attack')) throw new Error(`--attack ${f.attack} and --trigger-image both describe the trigger: give one of them`);
  const clash = BUILT_IN_TRIGGER.find((k) => given(k));
  if (clash) throw new Error(`${flagOf(clash)}: describes a built-in trigger or its poisoning; with --trigger-image the image is the trigger (drop one of them)`);
  const alpha = given('alpha') ? f.alpha : undefined;
  if (alpha !== undefined && !(alpha > 0 && alpha <= 1)) throw new Error(`--alpha: the trigger image's opacity must be in (0, 1], got ${alpha}`);
  const files: [string, string][] = [[path.resolve(f.triggerImage), '--trigger-image'], ...(f.triggerMask === undefined ? [] : [[path.resolve(f.triggerMask), '--trigger-mask'] as [string, string]])];
  const names: Record<string, string> = { target: '--target', mode: '--all-to-all', trigger: '--trigger-image' };
  try {
    return imageTriggerAttack({ image: f.triggerImage, mask: f.triggerMask, alpha, target: f.target, allToAll: f.allToAll }, dataset, (p) => names[p] ?? p);
  } catch (e) {
    const msg = (e as Error).message;
    // the longer path first: one may extend the other
    const flag = [...files].sort((a, b) => b[0].length - a[0].length).find(([file]) => msg.includes(file));
    throw flag ? new Error(`${flag[1]}: ${msg}`) : e;
  }
}

/** The triggered images of --asr-images; reader errors get the flag's name. */
function asrImagesOf(file: string | undefined, dataset: DatasetSpec): { set: TriggeredImageSet; path: string } | undefined {
  if (file === undefined) return undefined;
  try {
    return userTriggeredImages(file, dataset);
  } catch (e) {
    throw new Error(`--asr-images: ${(e as Error).message}`);
  }
}

/** The user's images at `file` to evaluate on (a folder read in chunks); reader errors get the flag's name. */
function testImages(file: string, dataset: DatasetSpec, transform: ImageTransform = {}): UserImages {
  try {
    return userTestImages(file, dataset, transform);
  } catch (e) {
    throw new Error(`--test: ${(e as Error).message}`);
  }
}

/** The user's images at `file` for a model of `dataset`; reader errors get the flag's name. */
function userImages(file: string, dataset: DatasetSpec, flag: string, transform: ImageTransform = {}, draw?: ImageDraw): Extract<CleanSource, { kind: 'images' }> {
  try {
    return userCleanSource(file, dataset, undefined, transform, draw);
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(`${draw && /: a draw of \d+ images/.test(msg) ? `--clean-size ${draw.size}` : flag}: ${msg}`);
  }
}

/** Flags of a model and its clean data without a run (defend and detect); with --run they come from its config.json. */
const WEIGHTS_FLAGS: (keyof ModelFlags)[] = ['model', 'width', 'dataset', 'cleanSize', 'cleanSeed', 'clean', 'normMean', 'normStd'];

/** defend's: those, the test images, and the trigger. */
const MODEL_FLAGS: (keyof DefendFlags)[] = [...WEIGHTS_FLAGS, 'test', 'triggerImage', 'triggerMask', 'asrImages', 'attack', 'triggerSize', 'pattern',
  'position', 'offset', 'alpha', 'poisonRatio', 'target', 'allToAll', 'attackSeed', 'sigDelta', 'sigFreq', 'wanetK', 'wanetS', 'wanetGridRescale', 'wanetCrossRatio'];

/**
 * The defend request the flags describe. Without --run: --clean (the user's images, read here; the
 * caller disposes request.clean.set) or --clean-size (a seeded draw from the training split), and
 * --clean-seed seeding the train/validation hold-out of either.
 */
export function defendRequest(f: DefendFlags, given: Given = typedOf(f)): DefendRequest {
  const common = { methods: f.method, overrides: overridesOf(f.set, { seed: f.seed, lambda: f.lambda }), valFraction: f.valFraction, dataDir: f.dataDir, force: f.force,
    ...(f.verdict === false ? { verdict: false } : f.verdictScan === false ? { verdict: { scan: false } } : {}),
    ...(f.precision && f.precision !== 'fp32' ? { precision: f.precision } : {}) };
  if (f.run) {
    const clash = MODEL_FLAGS.find((k) => given(k));
    if (clash) throw new Error(`${flagOf(clash)}: the model, its data and attack come from --run ${f.run} (its config.json); drop ${flagOf(clash)} or --run`);
    return { ...common, run: f.run, weights: f.weights, out: f.out };
  }
  const { model, clean, seed, checked: attack } = modelAndClean(f, '--out <dir>', () => attackOfFlags(f, f.dataset!, given));
  const asrImages = asrImagesOf(f.asrImages, model.dataset);
  return { ...common, model, clean, attack, out: f.out!, holdOutSeed: seed, ...(asrImages ? { asrImages } : {}),
    ...(f.test === undefined ? {} : { test: testImages(f.test, model.dataset, transformOf(f)) }) };
}

/** What gives a model and its clean data without a run. */
interface ModelFlags extends NormFlags, TransformFlags { weights?: string; model?: ModelName; width?: number; dataset?: DatasetSpec; cleanSize?: number; cleanSeed?: number; clean?: string; out?: string }

/**
 * Without --run: the weights and architecture, and the clean data (--clean, read here, or a --clean-size
 * draw seeded by --clean-seed, which seeds the hold-out too); `check` runs once the flags are complete
 * and before any image is read (its result comes back as `checked`).
 */
function modelAndClean<T>(f: ModelFlags, outFlag: string, check: () => T): { model: ModelSource; clean: CleanSource; seed: number; checked: T } {
  const missing = ([['weights', '--weights <file.pt|file.safetensors>'], ['model', '--model <arch>'], ['dataset', '--dataset <name>'],
    [f.clean === undefined ? 'cleanSize' : 'clean', '--clean <path> or --clean-size <n>'], ['out', outFlag]] as [keyof ModelFlags, string][])
    .filter(([k]) => f[k] === undefined).map(([, flag]) => flag);
  if (missing.length) throw new Error(`give --run <dir>, or the model and its clean data: missing ${missing.join(', ')}`);
  const dataset = f.dataset!;
  const norm = normOfFlags(f, dataset);
  const checked = check();
  const seed = f.cleanSeed ?? 1;
  if ((f.resize !== undefined || f.centerCrop !== undefined) && f.clean === undefined && (f as UserFileFlags).test === undefined)
    throw new Error(`${f.resize !== undefined ? '--resize' : '--center-crop'}: transforms the image files of --clean or --test; give one of them`);
  // --clean with --clean-size: a seeded stratified draw of the folder's (or .npz's) images, only those decoded
  const draw = f.cleanSize === undefined ? undefined : { size: f.cleanSize, seed };
  const clean: CleanSource = f.clean !== undefined ? userImages(f.clean, dataset, '--clean', transformOf(f), draw) : { kind: 'split', dataset, size: f.cleanSize!, seed };
  return { model: { model: f.model!, width: f.model === 'small-cnn' ? undefined : f.width, dataset, weights: f.weights!, ...(norm ? { norm } : {}) }, clean, seed, checked };
}

export interface DetectFlags extends ModelFlags { run?: string; preset: string; set: string[]; seed?: number; dataDir?: string; json: boolean; precision?: Precision }

/** The detect request the flags describe: a run (detect.json in it by default), or weights with their clean data and --out <file>. */
export function detectRequest(f: DetectFlags, given: Given = typedOf(f)): DetectRequest {
  const overrides = parseOverrides(f.set);
  if (f.seed !== undefined) overrides.seed = f.seed;
  const common = { preset: f.preset, overrides, dataDir: f.dataDir, ...(f.precision && f.precision !== 'fp32' ? { precision: f.precision } : {}) };
  if (f.run) {
    const clash = WEIGHTS_FLAGS.find((k) => given(k));
    if (clash) throw new Error(`${flagOf(clash)}: the model and its clean split come from --run ${f.run} (its config.json); drop ${flagOf(clash)} or --run`);
    return { ...common, run: f.run, weights: f.weights, out: f.out };
  }
  const { model, clean, seed } = modelAndClean(f, '--out <detect.json>', () => null);
  return { ...common, model, clean, holdOutSeed: seed, out: f.out! };
}

/** A model to evaluate: on the dataset's test split, or with --test (or --clean, the same) on the user's images (the caller disposes images.set). */
export type EvalTarget = ModelSource & { attack: AttackSpec | null; images?: UserImages; asrImages?: { set: TriggeredImageSet; path: string } };

export function evalTarget(f: EvalFlags, given: Given = typedOf(f)): EvalTarget {
  if (f.run) {
    const clash = [...USER_FILES, 'normMean', 'normStd'].find((k) => given(k));
    if (clash) throw new Error(`${flagOf(clash)}: --run ${f.run} evaluates the run's model on its dataset's test split with its own trigger; drop ${flagOf(clash)} or --run`);
    return runTarget(f.run, f.weights);
  }
  if (!f.weights) throw new Error('give --run <dir> or --weights <file> (safetensors or torch.save state dict)');
  assertFile(f.weights, '--weights');
  const attack = attackOfFlags(f, f.dataset, given);
  const norm = normOfFlags(f, f.dataset);
  const target: EvalTarget = { dataset: f.dataset, model: f.model, width: f.width, attack, weights: path.resolve(f.weights), ...(norm ? { norm } : {}) };
  if (f.clean !== undefined && f.test !== undefined) throw new Error('--test and --clean both give eval\'s images (the same flag under two names): give one');
  const asrImages = asrImagesOf(f.asrImages, f.dataset);
  if (asrImages) target.asrImages = asrImages;
  if ((f.resize !== undefined || f.centerCrop !== undefined) && f.clean === undefined && f.test === undefined)
    throw new Error(`${f.resize !== undefined ? '--resize' : '--center-crop'}: transforms the image files of --test; give it`);
  if (f.test !== undefined) target.images = testImages(f.test, f.dataset, transformOf(f));
  else if (f.clean !== undefined) target.images = userImages(f.clean, f.dataset, '--clean', transformOf(f));
  return target;
}
