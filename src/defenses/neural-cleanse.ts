// Neural Cleanse (Wang et al. 2019, code bolunwang/backdoor): is the model backdoored, and towards which
// class? For every class c, reverse-engineer the smallest mask m (and pattern p) such that
// x' = (1 - m) x + m p sends clean images to c: Adam on CE(f(x'), c) + cost * |m|_1, with the published
// cost schedule (start at 0, set to initCost once the attack succeeds, then x2 after `patience` epochs of
// success, /2^1.5 after `patience` epochs of failure; early stop once the best norm stalls). A backdoor
// target needs a far smaller mask than the other classes: the anomaly index of class c is
// |L1_c - median| / (1.4826 MAD) over the classes' mask norms, and a class is flagged when its index
// exceeds 2 on the low side. A detector, not a purifier: it reads only the defender's clean data.
import { cat, F, inferenceMode, manualSeed, nn, optim, scope, Tensor, tensor, zeros } from '../torch/compute';
import { forEachEvalBatch, Normalization, normalizeUnit } from '../train/loop';
import { z } from 'zod';
import { Rng } from '../util/rng';
import { DefenseData, DefenseHooks } from './common';

export interface NeuralCleanseOptions {
  /** optimisation epochs per class, each a pass over the clean images in batches (published: 1000, with early stop) */
  epochs: number;
  batchSize: number;
  /** Adam (published: lr 0.1, betas 0.5 and 0.9) */
  lr: number;
  betas: [number, number];
  /** the mask-norm weight once the attack first succeeds (published 1e-3) */
  initCost: number;
  /** share of the batch's images that must reach the class for the attack to count as successful (0.99) */
  successThreshold: number;
  /** epochs of success (failure) before the cost is raised (lowered); the early stop waits 5x this */
  patience: number;
  /** the cost is multiplied by this on success and divided by its 1.5th power on failure (2) */
  costMultiplier: number;
  earlyStop: boolean;
  /** flag a class whose anomaly index exceeds this, with a norm below the median (2) */
  anomalyThreshold: number;
  seed: number;
}

/** bolunwang/backdoor's gtsrb_visualize_example.py settings. */
export const NC_PUBLISHED: NeuralCleanseOptions = {
  epochs: 1000, batchSize: 32, lr: 0.1, betas: [0.5, 0.9], initCost: 1e-3, successThreshold: 0.99, patience: 5,
  costMultiplier: 2, earlyStop: true, anomalyThreshold: 2, seed: 1,
};

/** NOT the published setting: 50 of its 1000 epochs at most, for CPU runs (the early stop usually ends sooner). */
export const NC_CPU_SHORT: NeuralCleanseOptions = { ...NC_PUBLISHED, epochs: 50 };

export const NC_PRESETS: Record<string, NeuralCleanseOptions> = { default: NC_PUBLISHED, 'cpu-short': NC_CPU_SHORT };

const ncSchema = z.object({
  epochs: z.number().int().min(1), batchSize: z.number().int().min(1), lr: z.number().positive(), betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]),
  initCost: z.number().positive(), successThreshold: z.number().gt(0).max(1), patience: z.number().int().min(1), costMultiplier: z.number().gt(1),
  earlyStop: z.boolean(), anomalyThreshold: z.number().min(0), seed: z.number().int().min(0),
}).strict();

/** A preset with overrides, validated; errors name the option. */
export function neuralCleanseOptions(preset = 'default', overrides: Record<string, unknown> = {}): NeuralCleanseOptions {
  const base = Object.hasOwn(NC_PRESETS, preset) ? NC_PRESETS[preset] : undefined;
  if (!base) throw new Error(`neural-cleanse: unknown preset '${preset}' (known: ${Object.keys(NC_PRESETS).join(', ')})`);
  const r = ncSchema.safeParse({ ...base, ...overrides });
  if (!r.success) throw new Error(r.error.issues.map((i) => `neural-cleanse: option '${i.path.join('.') || '(options)'}': ${i.code === 'unrecognized_keys' ? `unknown option(s) ${i.keys.join(', ')}` : i.message}`).join('; '));
  return r.data as NeuralCleanseOptions;
}

export interface ClassTrigger {
  cls: number;
  /** L1 norm of the smallest successful mask found (pixels, in [0, H*W]); Infinity if the attack never succeeded */
  maskL1: number;
  /** share of the clean images the best mask and pattern send to the class */
  success: number;
  /** the best mask, row-major [H * W] in [0, 1] (3 decimals); empty if the attack never succeeded */
  mask: number[];
  anomalyIndex: number;
  flagged: boolean;
  epochs: number;
}

export interface NeuralCleanseReport {
  method: 'neural-cleanse';
  options: NeuralCleanseOptions;
  classes: ClassTrigger[];
  /** the classes flagged as backdoor targets, lowest norm first */
  flagged: number[];
  /** the anomaly index of the smallest mask (the published summary number) */
  anomalyIndex: number;
  seconds: number;
}

const MAD_CONSISTENCY = 1.4826;
const TANH_EPS = 1e-7;

/**
 * The anomaly index of every norm: |x - median| / (1.4826 median |x - median|); flagged: over the
 * threshold and below the median. Infinite norms (no trigger found) count as the largest.
 */
export function anomalyIndices(norms: number[], threshold: number): { index: number[]; flagged: boolean[] } {
  const median = (xs: number[]): number => {
    const v = [...xs].sort((a, b) => a - b), m = v.length >> 1;
    return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
  };
  const mid = median(norms);
  const mad = MAD_CONSISTENCY * median(norms.map((x) => Math.abs(x - mid)));
  const index = norms.map((x) => (x === mid ? 0 : mad > 0 ? Math.abs(x - mid) / mad : Infinity));
  return { index, flagged: norms.map((x, i) => x < mid && index[i] > threshold) };
}

/** x' = (1 - m) x + m p on unit images x [B, C, H, W], mask m [1, 1, H, W] and pattern p [1, C, H, W]. */
export function applyMask(x: Tensor, mask: Tensor, pattern: Tensor): Tensor {
  return scope(() => x.mul(mask.neg().add(1)).add(mask.mul(pattern)));
}

/** The published parametrisation: tanh(w) / (2 - eps) + 0.5, in (0, 1) with no clipping. */
const squash = (w: Tensor): Tensor => w.tanh().div(2 - TANH_EPS).add(0.5);

/** Reverse-engineers the smallest trigger for class c on unit images (the model frozen, eval mode). */
export function reverseEngineer(model: nn.Module, images: Tensor, norm: Normalization, c: number, o: NeuralCleanseOptions, h: DefenseHooks = {}): Omit<ClassTrigger, 'anomalyIndex' | 'flagged'> {
  const [n, channels, height, width] = images.shape;
  manualSeed(o.seed * 1013 + c);
  const rng = new Rng(o.seed * 7907 + c);
  // the published start: random mask and pattern (uniform in pixel space) in tanh space
  const atanhOf = (u: Tensor): Tensor => scope(() => {
    const y = u.sub(0.5).mul(2 - TANH_EPS).clamp(-1 + 1e-6, 1 - 1e-6);
    return y.add(1).div(y.neg().add(1)).log().mul(0.5);
  });
  const maskW = atanhOf(tensor(Float32Array.from({ length: height * width }, () => rng.next()), [1, 1, height, width])).requiresGrad_(true);
  const patternW = atanhOf(tensor(Float32Array.from({ length: channels * height * width }, () => rng.next()), [1, channels, height, width])).requiresGrad_(true);
  const opt = new optim.Adam([maskW, patternW], { lr: o.lr, betas: o.betas });
  const target = (b: number): Tensor => zeros([b]).add(c).long();
  let cost = 0, setCounter = 0, upCounter = 0, downCounter = 0, upFlag = false, downFlag = false;
  let best = Infinity, earlyBest = Infinity, earlyCounter = 0, epoch = 0;
  let bestMask: Tensor | null = null, bestPattern: Tensor | null = null;
  model.eval();
  try {
    for (epoch = 0; epoch < o.epochs; epoch++) {
      const perm = rng.permutation(n);
      let hits = 0, reg = 0;
      for (let s = 0; s < n; s += o.batchSize) {
        const b = Math.min(o.batchSize, n - s);
        const [hit, l1] = scope(() => {
          const idx = tensor(Float64Array.from(perm.subarray(s, s + b)), [b]).long();
          const mask = squash(maskW), pattern = squash(patternW);
          const logits = model.call(normalizeUnit(applyMask(images.indexSelect(0, idx), mask, pattern), norm));
          const l1 = mask.abs().sum();
          const ce = F.crossEntropy(logits, target(b));
          (cost > 0 ? ce.add(l1.mul(cost)) : ce).backward();
          return [logits.argmax(1).eq(c).sum().item(), l1.item()];
        });
        opt.step();
        opt.zeroGrad();
        hits += hit;
        reg += l1 * b;
        h.progress?.(`neural cleanse class ${c}`, b, n * o.epochs);
      }
      const acc = hits / n, norm1 = reg / n;
      if (acc >= o.successThreshold && norm1 < best) {
        bestMask?.dispose();
        bestPattern?.dispose();
        [bestMask, bestPattern] = scope(() => [squash(maskW).detach(), squash(patternW).detach()]);
        best = norm1;
      }
      if (o.earlyStop) {
        if (best < Infinity) earlyCounter = best >= earlyBest ? earlyCounter + 1 : 0;
        earlyBest = Math.min(best, earlyBest);
        if (upFlag && downFlag && earlyCounter >= 5 * o.patience) { epoch++; break; }
      }
      if (cost === 0 && acc >= o.successThreshold) {
        if (++setCounter >= o.patience) {
          cost = o.initCost;
          upCounter = downCounter = 0;
          upFlag = downFlag = false;
        }
      } else setCounter = 0;
      if (acc >= o.successThreshold) { upCounter++; downCounter = 0; } else { upCounter = 0; downCounter++; }
      if (upCounter >= o.patience) { upCounter = 0; cost *= o.costMultiplier; upFlag = true; }
      else if (downCounter >= o.patience) { downCounter = 0; cost /= o.costMultiplier ** 1.5; downFlag = true; }
    }
    const success = bestMask ? successOf(model, images, norm, c, bestMask, bestPattern!) : 0;
    const mask = bestMask ? Array.from(bestMask.toArray() as Float32Array, (v) => Math.round(v * 1000) / 1000) : [];
    return { cls: c, maskL1: bestMask ? scope(() => bestMask!.sum().item()) : Infinity, success, mask, epochs: epoch };
  } finally {
    opt.dispose();
    for (const t of [maskW, patternW, bestMask, bestPattern]) t?.dispose();
  }
}

function successOf(model: nn.Module, images: Tensor, norm: Normalization, c: number, mask: Tensor, pattern: Tensor): number {
  let hits = 0;
  inferenceMode(() => forEachEvalBatch(images, (s, m) => {
    hits += scope(() => model.call(normalizeUnit(applyMask(images.narrow(0, s, m), mask, pattern), norm)).argmax(1).eq(c).sum().item());
  }));
  const n = images.size(0);
  return n ? hits / n : 0;
}

/** Runs the detection on all of the defender's clean images (training and held-out parts); the model is left unchanged. */
export function neuralCleanse(model: nn.Module, data: DefenseData, o: NeuralCleanseOptions, h: DefenseHooks = {}): NeuralCleanseReport {
  const t0 = performance.now();
  const params = model.parameters();
  for (const p of params) p.requiresGrad_(false);
  const images = scope(() => cat([data.train.images, data.val.images], 0).to('float32').div(255));
  const found: Omit<ClassTrigger, 'anomalyIndex' | 'flagged'>[] = [];
  try {
    for (let c = 0; c < data.train.classes; c++) {
      const r = reverseEngineer(model, images, data.norm, c, o, h);
      found.push(r);
      h.log?.(`neural cleanse class ${c}: mask L1 ${r.maskL1.toFixed(2)}, success ${(100 * r.success).toFixed(1)}% (${r.epochs} epochs)`);
    }
  } finally {
    images.dispose();
    for (const p of params) p.requiresGrad_(true);
  }
  const { index, flagged } = anomalyIndices(found.map((f) => f.maskL1), o.anomalyThreshold);
  const classes = found.map((f, i) => ({ ...f, anomalyIndex: index[i], flagged: flagged[i] }));
  const lowest = classes.reduce((a, b) => (b.maskL1 < a.maskL1 ? b : a));
  return {
    method: 'neural-cleanse', options: o, classes,
    flagged: classes.filter((k) => k.flagged).sort((a, b) => a.maskL1 - b.maskL1).map((k) => k.cls),
    anomalyIndex: lowest.anomalyIndex,
    seconds: (performance.now() - t0) / 1000,
  };
}
