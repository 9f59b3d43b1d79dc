// A training run: data, poisoning, the defender's split, epochs with an atomic checkpoint after each,
// resume after a kill, and the final model and metrics in the run directory.
import * as fs from 'fs';
import * as path from 'path';
import { assertPrecision, manualSeed, nn, optim, Precision, PRECISIONS, saveSafetensors, Tensor, withPrecision } from '../torch';
import { z } from 'zod';
import { ATTACK_SPEC_SCHEMA, AttackSpec, attackIssues, poisonTrainingSet } from '../attacks/poison';
import { describeTrigger } from '../attacks/triggers';
import { DATASET_NAMES, datasetInfo, DatasetName, ImageSet, loadImageSet } from '../data/datasets';
import { randomCropFlip } from '../data/augment';
import { defenderSplit } from '../data/split';
import { createModel, MODEL_NAMES, ModelName } from '../models';
import { writeFileAtomic } from '../util/atomic';
import { formatIssues, issueMessage, parseWith, SpecIssue } from '../util/validation';
import { readRunRecord } from './run-records';
import { normalize, trainEpoch } from './loop';
import { CheckpointFormat, readEpochState, saveEpochState } from './checkpoint';
import { applyEpochState, disposeEpochState, EpochState } from './epoch-state';
import { evaluateModel, Metrics } from './metrics';

export type Schedule = 'cosine' | 'step' | 'multistep' | 'constant';

export interface TrainConfig {
  dataset: DatasetName;
  model: ModelName;
  width?: number;
  /** null trains a clean model */
  attack: AttackSpec | null;
  /** fraction of the training set held out as the defender's clean split */
  cleanFraction: number;
  epochs: number;
  batchSize: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  schedule: Schedule;
  seed: number;
  /** evaluate ACC/ASR on the test set after every epoch (reporting only) */
  evalEachEpoch: boolean;
  /**
   * 'bf16': bfloat16 autocast (docs/engine.md); absent means fp32, so that runs made before it existed
   * keep their config.json (resume compares it byte for byte) and the defenses' input digests
   */
  precision?: Precision;
}

export const DEFAULT_TRAIN: Omit<TrainConfig, 'dataset' | 'model' | 'attack'> = {
  cleanFraction: 0.05, epochs: 10, batchSize: 128, lr: 0.01, momentum: 0.9, weightDecay: 5e-4,
  schedule: 'cosine', seed: 1, evalEachEpoch: true,
};

const int0 = z.number().int().min(0);
/** A TrainConfig's shape; the ranges that depend on the dataset are attackIssues'. */
const trainConfigSchema = z.object({
  dataset: z.enum(DATASET_NAMES), model: z.enum(MODEL_NAMES), width: z.number().int().min(1).optional(),
  attack: ATTACK_SPEC_SCHEMA.nullable(),
  cleanFraction: z.number().gt(0).lt(1), epochs: z.number().int().min(1), batchSize: z.number().int().min(1), lr: z.number().min(0),
  momentum: z.number().min(0).max(1), weightDecay: z.number().min(0), schedule: z.enum(['cosine', 'step', 'multistep', 'constant']), seed: int0,
  evalEachEpoch: z.boolean(), precision: z.enum(PRECISIONS).optional(),
});

/** Everything wrong with a training config, keyed by dotted path ('attack.trigger.size'); empty when train() can run it. */
export function trainConfigIssues(cfg: unknown): SpecIssue[] {
  const r = trainConfigSchema.safeParse(cfg);
  if (!r.success) return r.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: issueMessage(i) }));
  const c = r.data as TrainConfig;
  return c.attack ? attackIssues(c.attack, c.dataset).map((i) => ({ ...i, path: `attack.${i.path}` })) : [];
}

/** A run's config.json, checked: errors name the file and the field. */
export function readTrainConfig(file: string): TrainConfig {
  const cfg = readRunRecord<TrainConfig>(file);
  const issues = trainConfigIssues(cfg);
  if (issues.length) throw new Error(`${file}: ${formatIssues(issues)}`);
  return cfg;
}

const runAttackSchema = z.object({ poisonedIndices: z.array(int0), cleanIndices: z.array(int0).min(1) });

/** A run's attack.json, checked: the poisoned and the defender's clean indices. */
export function readRunAttack(file: string): z.infer<typeof runAttackSchema> {
  return parseWith(runAttackSchema, readRunRecord<unknown>(file), file);
}

export interface EpochRecord { epoch: number; loss: number; trainAcc: number; seconds: number; imagesPerSecond: number; lr: number; test?: Metrics }

export interface RunFiles { dir: string; config: string; checkpoint: string; model: string; attack: string; history: string; metrics: string }

export function runFiles(dir: string): RunFiles {
  return {
    dir, config: path.join(dir, 'config.json'), checkpoint: path.join(dir, 'checkpoint.safetensors'),
    model: path.join(dir, 'model.safetensors'), attack: path.join(dir, 'attack.json'),
    history: path.join(dir, 'history.json'), metrics: path.join(dir, 'metrics.json'),
  };
}

export interface PreparedData {
  attacker: ImageSet; clean: ImageSet; test: ImageSet; poisonedIndices: Int32Array; cleanIndices: Int32Array;
  /** WaNet noise-mode samples (true labels kept) */
  crossIndices: Int32Array;
}

/** Loads the dataset, holds out the defender's split, and poisons the attacker's part. */
export function prepareData(cfg: Pick<TrainConfig, 'dataset' | 'attack' | 'cleanFraction' | 'seed'>, dataDir?: string): PreparedData {
  const train = loadImageSet(cfg.dataset, 'train', dataDir);
  const test = loadImageSet(cfg.dataset, 'test', dataDir);
  const split = defenderSplit(train, cfg.cleanFraction, cfg.seed);
  train.images.dispose();
  train.labels.dispose();
  let attacker = split.attacker;
  let poisonedIndices: Int32Array = new Int32Array(0);
  let crossIndices: Int32Array = new Int32Array(0);
  if (cfg.attack) {
    const p = poisonTrainingSet(attacker.images, attacker.labels, cfg.attack, attacker.classes);
    attacker.images.dispose();
    attacker.labels.dispose();
    attacker = { images: p.images, labels: p.labels, classes: attacker.classes };
    poisonedIndices = p.poisonedIndices;
    crossIndices = p.crossIndices;
  }
  return { attacker, clean: split.clean, test, poisonedIndices, cleanIndices: split.cleanIndices, crossIndices };
}

export function makeScheduler(opt: optim.Optimizer, cfg: TrainConfig): optim.LRScheduler {
  switch (cfg.schedule) {
    case 'cosine': return new optim.CosineAnnealingLR(opt, cfg.epochs);
    case 'step': return new optim.StepLR(opt, Math.max(1, Math.floor(cfg.epochs / 3)), 0.1);
    case 'multistep': return new optim.MultiStepLR(opt, [Math.floor(cfg.epochs / 2), Math.floor((3 * cfg.epochs) / 4)], 0.1);
    case 'constant': return new optim.ConstantLR(opt);
    default: throw new Error(`unknown schedule '${cfg.schedule as string}' (known: cosine, step, multistep, constant)`);
  }
}

export interface TrainHooks {
  onEpochStart?: (epoch: number, images: number) => void;
  onBatch?: (images: number, loss: number, correct: number) => void;
  onEpochEnd?: (r: EpochRecord) => void;
  log?: (line: string) => void;
}

const CHECKPOINT: CheckpointFormat = { recordKey: 'history', startOver: 'not a checkpoint of vardefense train; move it away to start over' };

/** The run's last epoch state, its history checked against its epoch. */
function readCheckpoint(file: string, epochs: number): EpochState & { extra: EpochRecord[] } {
  const s = readEpochState(file, epochs, CHECKPOINT);
  if (!Array.isArray(s.extra) || s.extra.length !== s.epoch) {
    disposeEpochState(s);
    throw new Error(`${file}: metadata 'history' must be a list of ${s.epoch} epoch records (${CHECKPOINT.startOver})`);
  }
  return s as EpochState & { extra: EpochRecord[] };
}

/** Model weights plus the run's config as metadata, PyTorch names (safetensors). */
export function saveModel(file: string, model: nn.Module, metadata: Record<string, string>): void {
  saveSafetensors(file, model.stateDict(), { format: 'pt', ...metadata });
}

export interface TrainResult { model: nn.Module; history: EpochRecord[]; metrics: Metrics; data: PreparedData }

/**
 * Trains per `cfg` into `dir`. With resume, continues from the last complete epoch of an earlier run
 * with the same config. Each epoch reseeds from (seed, epoch), so a resumed run gives the numbers of
 * an uninterrupted one.
 */
export function train(cfg: TrainConfig, dir: string, o: { resume?: boolean; dataDir?: string; hooks?: TrainHooks } = {}): TrainResult {
  const files = runFiles(dir);
  const log = o.hooks?.log ?? (() => undefined);
  // everything is checked, and the data read, before the run directory is touched
  const issues = trainConfigIssues(cfg);
  if (issues.length) throw new Error(`training config: ${formatIssues(issues)}`);
  const cfgJson = JSON.stringify(cfg, null, 2);
  if (o.resume && fs.existsSync(files.config) && fs.readFileSync(files.config, 'utf8') !== cfgJson)
    throw new Error(`${files.config}: the run in ${dir} was made with another config; cannot resume it with this one`);
  if (!o.resume && fs.existsSync(files.checkpoint)) throw new Error(`${dir} already holds a run; pass --resume to continue it or choose another --out`);
  assertPrecision(cfg.precision ?? 'fp32');
  const ckpt = o.resume && fs.existsSync(files.checkpoint) ? readCheckpoint(files.checkpoint, cfg.epochs) : null;

  const info = datasetInfo(cfg.dataset);
  manualSeed(cfg.seed);
  const data = prepareData(cfg, o.dataDir);
  writeFileAtomic(files.config, cfgJson);
  writeFileAtomic(files.attack, JSON.stringify({
    attack: cfg.attack, trigger: cfg.attack ? describeTrigger(cfg.attack.trigger) : null,
    poisonedIndices: Array.from(data.poisonedIndices), cleanIndices: Array.from(data.cleanIndices),
    ...(data.crossIndices.length ? { crossIndices: Array.from(data.crossIndices) } : {}),
    note: 'indices refer to the training set after the clean split was removed (poisoned, cross) and to the full training set (clean)',
  }));
  log(`${cfg.dataset}: ${data.attacker.labels.numel} training images (${data.poisonedIndices.length} poisoned${data.crossIndices.length ? `, ${data.crossIndices.length} noise-mode` : ''}), ${data.clean.labels.numel} held out for the defender, ${data.test.labels.numel} test`);

  manualSeed(cfg.seed);
  const model = createModel({ name: cfg.model, width: cfg.width, inChannels: info.channels, numClasses: info.classes, imageSize: info.size });
  const opt = new optim.SGD(model.parameters(), { lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay });
  const sched = makeScheduler(opt, cfg);
  let start = 1;
  let history: EpochRecord[] = [];
  if (ckpt) {
    applyEpochState(ckpt, model, opt);
    start = ckpt.epoch + 1;
    history = ckpt.extra;
    log(`resuming after epoch ${ckpt.epoch}`);
  }
  sched.setEpoch(start - 1);
  const prepare = (x: Tensor): Tensor => {
    if (!info.augment) return normalize(x, info);
    const a = randomCropFlip(x);
    const n = normalize(a, info);
    a.dispose();
    return n;
  };
  withPrecision(cfg.precision, () => trainEpochs(cfg, start, model, opt, sched, data, prepare, history, files, info, o.hooks));
  const last = history[history.length - 1];
  const metrics = last.test ?? withPrecision(cfg.precision, () => evaluateModel(model, data.test, info, cfg.attack));
  saveModel(files.model, model, { config: cfgJson });
  writeFileAtomic(files.history, JSON.stringify(history, null, 2));
  writeFileAtomic(files.metrics, JSON.stringify(metrics, null, 2));
  opt.dispose();
  return { model, history, metrics, data };
}

/** The epochs from `start` on, each checkpointed; `history` grows by one record per epoch. */
function trainEpochs(cfg: TrainConfig, start: number, model: nn.Module, opt: optim.SGD, sched: optim.LRScheduler, data: PreparedData,
  prepare: (x: Tensor) => Tensor, history: EpochRecord[], files: RunFiles, info: ReturnType<typeof datasetInfo>, hooks?: TrainHooks): void {
  for (let epoch = start; epoch <= cfg.epochs; epoch++) {
    manualSeed(cfg.seed * 100003 + epoch);
    hooks?.onEpochStart?.(epoch, data.attacker.labels.numel);
    const lr = opt.lr;
    const s = trainEpoch(model, opt, data.attacker.images, data.attacker.labels, {
      batchSize: cfg.batchSize, norm: info, prepare, onBatch: (b) => hooks?.onBatch?.(b.images, b.loss, b.correct),
    });
    sched.step();
    const rec: EpochRecord = { epoch, loss: s.loss, trainAcc: s.accuracy, seconds: s.seconds, imagesPerSecond: s.imagesPerSecond, lr };
    if (cfg.evalEachEpoch || epoch === cfg.epochs) rec.test = evaluateModel(model, data.test, info, cfg.attack);
    history.push(rec);
    saveEpochState(files.checkpoint, { epoch, model: model.stateDict(), optimizer: opt.stateDict(), stepCount: opt.stepCount, extra: history }, CHECKPOINT);
    hooks?.onEpochEnd?.(rec);
  }
}
