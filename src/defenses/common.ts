// What every defense shares: the defender's data (the clean split, with a validation part held out),
// a fine-tuning loop with hooks for extra loss terms, and clean accuracy/loss on the validation part.
import { z } from 'zod';
import { cat, F, inferenceMode, noGrad, manualSeed, nn, optim, scope, stack, Tensor, tensor } from '../torch/compute';
import { ImageSet } from '../data/image-set';
import { evalBatchSize, forEachEvalBatch, Normalization, normalize, predict } from '../train/loop';
import { accuracyOf } from '../train/accuracy';
import { applyEpochState, EpochState } from '../train/epoch-state';
import { Rng } from '../util/rng';

/** The defender's view: a small clean set and nothing else (never the test set or a trigger). */
export interface DefenseData {
  /** the part of the clean split the defense trains on */
  train: ImageSet;
  /** the held-out part, for choices such as a pruning tolerance or lambda */
  val: ImageSet;
  norm: Normalization;
}

export interface DefenseHooks {
  log?: (line: string) => void;
  /** called once per optimisation step or evaluation batch of a stage; `total` counts images */
  progress?: (stage: string, images: number, total: number) => void;
  /**
   * the checkpoint of the defense's next fine-tune call (calls counted in the order they run), for
   * the defenses whose fine-tune state between epochs is the model, the optimiser and `epochState`
   */
  epochCheckpoint?: (stage: string) => EpochCheckpoint;
}

/** `v` as a list of finite numbers (a saved per-epoch record), or an error naming `what`. */
export function numbers(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new Error(`'${what}' is not a list of finite numbers`);
  return v as number[];
}

/** Where one fine-tune call saves its state after each epoch and finds it again after a kill. */
export interface EpochCheckpoint {
  /** the last state saved (epoch in 1..epochs), or null; the caller owns its tensors */
  load(epochs: number): EpochState | null;
  /** writes the state (its tensors are the model's and the optimiser's own: written, not kept) */
  save(s: EpochState): void;
}

/** Splits the clean split into a training part and a validation part of `valFraction` (seeded). */
export function holdOut(clean: ImageSet, valFraction: number, seed: number): { train: ImageSet; val: ImageSet } {
  if (!(valFraction > 0 && valFraction < 1)) throw new Error(`validation fraction must be in (0, 1), got ${valFraction}`);
  const n = clean.labels.numel;
  const perm = new Rng(seed ^ 0x7a11d).permutation(n);
  const k = Math.max(1, Math.round(valFraction * n));
  const take = (idx: Int32Array): ImageSet => scope(() => {
    const t = tensor(Int32Array.from(idx).sort(), [idx.length]).long();
    return { images: clean.images.indexSelect(0, t), labels: clean.labels.indexSelect(0, t), classes: clean.classes };
  });
  return { val: take(perm.slice(0, k)), train: take(perm.slice(k)) };
}

export function disposeSet(s: ImageSet): void {
  s.images.dispose();
  s.labels.dispose();
}

/** Clean accuracy of `model` on `set` (eval mode). */
export function accuracyOn(model: nn.Module, set: ImageSet, norm: Normalization): number {
  const preds = predict(model, set.images, { batchSize: evalBatchSize(set.images.size(2)), prepare: (x) => normalize(x, norm) });
  return accuracyOf(preds, set.labels.toList());
}

/** Mean cross-entropy of `model` on `set` (eval mode): a smoother criterion than accuracy on few images. */
export function lossOn(model: nn.Module, set: ImageSet, norm: Normalization): number {
  model.eval();
  let sum = 0;
  inferenceMode(() => forEachEvalBatch(set.images, (s, m) => {
    sum += scope(() => F.crossEntropy(model.call(normalize(set.images.narrow(0, s, m), norm)), set.labels.narrow(0, s, m)).item()) * m;
  }));
  return sum / set.labels.numel;
}

/**
 * The fine-tuning options of the defenses that fine-tune (their schemas spread these shapes; the
 * fine-tune loop takes their type). `fineTuneShape` is every such defense's; the published-strength
 * part is optional, so that the presets written before it resolve (and are reported) exactly as before.
 */
export const fineTuneShape = {
  epochs: z.number().int().min(1), lr: z.number().positive(), batchSize: z.number().int().min(1), momentum: z.number().min(0).max(1),
  weightDecay: z.number().min(0),
  /** cosine decay over the epochs, a constant rate, or (published shape) x0.1 at each of `milestones` (epochs, as PyTorch's MultiStepLR) */
  schedule: z.enum(['cosine', 'constant']),
  seed: z.number().int().min(0),
};

export const AUGMENTS = ['none', 'crop', 'crop-flip'] as const;
export type Augment = (typeof AUGMENTS)[number];

/** Only for defenses whose per-image targets stay right under augmentation. */
export const publishedFineTuneShape = {
  schedule: z.enum(['cosine', 'constant', 'step']),
  /** for schedule 'step': the epochs at which the rate is multiplied by 0.1 */
  milestones: z.array(z.number().int().min(1)).optional(),
  /** Nesterov momentum (default false) */
  nesterov: z.boolean().optional(),
  /**
   * augmentation of each training batch before normalisation (default 'none': the batch as stored):
   * a random crop of the zero-padded image (padding 4), and for 'crop-flip' a horizontal flip with
   * probability 1/2 (for CIFAR-like data), seeded by (seed, epoch, batch): see augmentBatch.
   */
  augment: z.enum(AUGMENTS).optional(),
};

const fineTuneOptions = z.object({ ...fineTuneShape, ...publishedFineTuneShape });
export type FineTuneOptions = z.infer<typeof fineTuneOptions>;

export const AUGMENT_PADDING = 4;

/** The generator of the augmentation of batch `batch` of epoch `epoch` under `seed`. */
export const augmentRng = (seed: number, epoch: number, batch: number): Rng => new Rng(((seed * 1009 + epoch) * 65537 + batch) ^ 0xa06e);

/**
 * A batch's augmentation: for each image in order, the crop's top offset and left offset in
 * [0, 2 * padding] (rng.int), then for 'crop-flip' whether to flip (rng.next() < 0.5); the crop is
 * taken from the image zero-padded by `padding` on every side. uint8 [B, C, H, W] in and out.
 */
export function augmentBatch(images: Tensor, mode: Augment, rng: Rng, padding = AUGMENT_PADDING): Tensor {
  if (mode === 'none') return images;
  return noGrad(() => scope(() => {
    const [n, , h, w] = images.shape;
    const padded = F.pad(images, [padding, padding, padding, padding], 0);
    const crops: Tensor[] = [];
    for (let i = 0; i < n; i++) {
      const top = rng.int(2 * padding + 1), left = rng.int(2 * padding + 1);
      let c = padded.select(0, i).narrow(1, top, h).narrow(2, left, w);
      if (mode === 'crop-flip' && rng.next() < 0.5) c = c.flip([2]);
      crops.push(c);
    }
    return stack(crops);
  }));
}

export const FINE_TUNE_DEFAULTS: FineTuneOptions = { epochs: 10, lr: 0.01, batchSize: 128, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine', seed: 1 };

export interface StepContext { epoch: number; batch: number; batches: number; step: number; steps: number }
export interface BatchContext extends StepContext { /** indices of the batch's images in the training data */ idx: Tensor }

export interface FineTuneHooks extends DefenseHooks {
  /** before each optimisation step (e.g. to move a threshold) */
  beforeStep?: (s: StepContext) => void;
  /** after each optimisation step (e.g. to project the weights back onto a constraint) */
  afterStep?: (s: StepContext) => void;
  /** an extra loss term for the batch, added to the cross-entropy */
  extraLoss?: (x: Tensor, y: Tensor, logits: Tensor, s: BatchContext) => Tensor | null;
  /** the parameters optimised (default: all of the model's) */
  parameters?: Tensor[];
  /** computes the batch's gradients itself, instead of one forward pass and loss (e.g. SAM's two passes) */
  gradients?: (x: Tensor, y: Tensor, s: BatchContext) => void;
  /** the optimiser (default: SGD with the options' lr, momentum and weight decay) */
  optimizer?: (params: Tensor[]) => optim.Optimizer;
  /** the loss itself, instead of cross-entropy (e.g. for stamped images) */
  batchLoss?: (x: Tensor, y: Tensor, logits: Tensor) => Tensor;
  /** turns a uint8 batch and its labels into model input and targets (default: normalise) */
  prepare?: (images: Tensor, labels: Tensor, idx: Tensor) => [Tensor, Tensor];
  stage?: string;
  /**
   * saves the state after each epoch in `epochCheckpoint(stage)` and resumes after the last one saved:
   * the numbers of an unbroken run, provided the hooks keep no state between epochs other than
   * `epochState`'s and draw nothing from the global generator (shuffles and augmentation are seeded per epoch already)
   */
  resumable?: boolean;
  /** the hooks' own state between epochs (e.g. a per-epoch report), saved with each checkpoint as JSON */
  epochState?: { save(): unknown; load(v: unknown): void };
}

/** SGD on `data` for `o.epochs` epochs, seeded; the model is changed in place. */
export function fineTune(model: nn.Module, data: ImageSet, norm: Normalization, o: FineTuneOptions, h: FineTuneHooks = {}): void {
  const n = data.labels.numel;
  if (n === 0) throw new Error('fine-tuning needs at least one clean image');
  manualSeed(o.seed);
  const params = h.parameters ?? model.parameters();
  const opt = h.optimizer ? h.optimizer(params) : new optim.SGD(params, { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay, nesterov: o.nesterov ?? false });
  if (o.schedule === 'step' && !o.milestones?.length) throw new Error("fine-tuning: schedule 'step' needs milestones (epochs)");
  const sched = o.schedule === 'cosine' ? new optim.CosineAnnealingLR(opt, o.epochs)
    : o.schedule === 'step' ? new optim.MultiStepLR(opt, o.milestones ?? []) : new optim.ConstantLR(opt);
  const augment = o.augment ?? 'none';
  const batches = Math.ceil(n / o.batchSize);
  const steps = o.epochs * batches;
  const prepare = h.prepare ?? ((x: Tensor, y: Tensor): [Tensor, Tensor] => [normalize(x, norm), y]);
  const stage = h.stage ?? 'fine-tune';
  const checkpoint = h.resumable ? h.epochCheckpoint?.(stage) : undefined;
  const start = resumeFrom(checkpoint?.load(o.epochs) ?? null, model, opt, h);
  if (start > 0) {
    sched.setEpoch(start);
    h.log?.(`${stage}: resumed after epoch ${start} of ${o.epochs}`);
    h.progress?.(stage, n * start, n * o.epochs);
  }
  for (let epoch = start; epoch < o.epochs; epoch++) {
    model.train();
    const perm = tensor(new Rng(o.seed * 1009 + epoch).permutation(n), [n]).long();
    for (let batch = 0; batch < batches; batch++) {
      const s: StepContext = { epoch, batch, batches, step: epoch * batches + batch, steps };
      h.beforeStep?.(s);
      const size = scope(() => {
        const idx = perm.slice(0, batch * o.batchSize, Math.min(n, (batch + 1) * o.batchSize));
        const images = data.images.indexSelect(0, idx);
        const [x, y] = prepare(augment === 'none' ? images : augmentBatch(images, augment, augmentRng(o.seed, epoch, batch)), data.labels.indexSelect(0, idx), idx);
        if (h.gradients) {
          h.gradients(x, y, { ...s, idx });
          return idx.numel;
        }
        const logits = model.call(x);
        let loss = h.batchLoss ? h.batchLoss(x, y, logits) : F.crossEntropy(logits, y);
        const extra = h.extraLoss?.(x, y, logits, { ...s, idx });
        if (extra) loss = loss.add(extra);
        loss.backward();
        return idx.numel;
      });
      opt.step();
      opt.zeroGrad();
      h.afterStep?.(s);
      h.progress?.(stage, size, n * o.epochs);
    }
    perm.dispose();
    sched.step();
    checkpoint?.save({ epoch: epoch + 1, model: model.stateDict(), optimizer: opt.stateDict(), stepCount: opt.stepCount, extra: h.epochState?.save() ?? null });
  }
  opt.dispose();
}

/** Loads a saved epoch's state (0 when there is none): the epoch to start from. */
function resumeFrom(saved: EpochState | null, model: nn.Module, opt: optim.Optimizer, h: FineTuneHooks): number {
  if (!saved) return 0;
  applyEpochState(saved, model, opt);
  try {
    h.epochState?.load(saved.extra);
  } catch (e) {
    throw new Error(`${saved.source ?? 'saved fine-tune state'}: ${(e as Error).message}`);
  }
  return saved.epoch;
}

/** A deep copy of a model's parameters and buffers, to restore or to compare against. */
export function snapshot(model: nn.Module): Map<string, Tensor> {
  return new Map([...model.stateDict()].map(([k, v]) => [k, v.detach().clone()]));
}

export function restore(model: nn.Module, state: Map<string, Tensor>): void {
  model.loadStateDict(state);
}

export function disposeState(state: Map<string, Tensor>): void {
  for (const t of state.values()) t.dispose();
}

/** Logits of `model` (eval mode) for every image of `set`, in order: a teacher's targets. */
export function logitsOn(model: nn.Module, set: ImageSet, norm: Normalization): Tensor {
  model.eval();
  const parts: Tensor[] = [];
  inferenceMode(() => forEachEvalBatch(set.images, (s, m) => parts.push(scope(() => model.call(normalize(set.images.narrow(0, s, m), norm)).clone()))));
  const out = scope(() => cat(parts, 0).clone());
  for (const p of parts) p.dispose();
  return out;
}

/** Knowledge-distillation loss T^2 * KL(softmax(teacher / T) || softmax(student / T)), mean over the batch. */
export function distillLoss(student: Tensor, teacher: Tensor, temperature: number): Tensor {
  return scope(() => F.klDiv(F.logSoftmax(student.div(temperature), 1), F.softmax(teacher.div(temperature), 1), 'sum')
    .mul((temperature * temperature) / student.size(0)));
}

/**
 * `weight` times distillLoss, from the teacher's softened probabilities (softmax(teacher / T), computed
 * once): weight * T^2 times the cross-entropy of the student's softened outputs against them, mean over
 * the batch. It differs from distillLoss by the teacher's entropy, a constant: the same gradients bit
 * for bit as distillLoss(...).mul(weight), with fewer operations per step (the value is not the KL divergence).
 */
export function softTargetLoss(student: Tensor, teacherProbs: Tensor, temperature: number, weight = 1): Tensor {
  return scope(() => {
    const loss = F.logSoftmax(student.div(temperature), 1).mul(teacherProbs).sum().mul(-(temperature * temperature) / student.size(0));
    // a separate factor, as distillLoss(...).mul(weight) rounds it; 1 needs none
    return weight === 1 ? loss : loss.mul(weight);
  });
}

/** softmax(logits / T) over the classes: softTargetLoss's targets. */
export const softTargets = (logits: Tensor, temperature: number): Tensor => noGrad(() => scope(() => F.softmax(logits.div(temperature), 1)));

/** A parameter whose slices along `dim` belong to channels (dim 0: output channels). */
export interface Slice { t: Tensor; dim: number }

/**
 * Zeroes the given channels' slices of every parameter, in place: how a pruning is baked into the
 * weights, so that it survives a saved state dict.
 */
export function zeroChannels(slices: Slice[], channels: number[]): void {
  if (!channels.length) return;
  noGrad(() => scope(() => {
    for (const { t, dim } of slices) {
      const keep = new Float32Array(t.shape[dim]).fill(1);
      for (const c of channels) keep[c] = 0;
      t.mul_(tensor(keep, [keep.length]).view(t.shape.map((n, d) => (d === dim ? n : 1))));
    }
  }));
}
