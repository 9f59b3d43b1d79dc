// A short trigger search over every class at once: for each class c, a mask m_c and pattern p_c
// (Neural Cleanse's form, x' = (1 - m) x + m p, which covers a patch anywhere and a blend: a mask of
// alpha over the image) that send the defender's clean images to c, with an L1 price on the mask that
// rises while the class is reached and falls while it is not (NC's rule, per class). The classes share
// every forward pass: a batch of B images becomes K x B stamped images, one block per class, so a
// search costs `steps` passes of K x B images instead of K separate optimisations (for large images or
// many classes, the blocks of a step go in several passes of fewer classes: PASS_PIXELS).
// A backdoor's target needs a far smaller mask than the other classes (the low-side anomaly index of
// the mask norms); the masks found are also what the purification unlearns. Reads only the images given.
import { F, nn, noGrad, optim, scope, Tensor, tensor } from '../torch/compute';
import { forEachEvalBatch, Normalization, normalizeUnit } from '../train/loop';
import { Rng } from '../util/rng';
import { anomalyIndices, applyMask } from './neural-cleanse';

export interface TriggerSearchOptions {
  /** Adam steps; each sees `batchSize` images stamped once per class */
  steps: number;
  batchSize: number;
  lr: number;
  /** the L1 price per mask pixel at the start, and its factor up (reached) or down (not reached) per step */
  cost: number;
  costFactor: number;
  /** a class counts as reached when this share of its block goes to it */
  success: number;
  seed: number;
  /** most input pixels (per channel) in one forward pass (PASS_PIXELS otherwise): memory, not results */
  passPixels?: number;
  /** the pattern's start, one value in [0, 1] for every pixel (0: black); absent: uniform random per pixel */
  patternStart?: number;
}

export const TRIGGER_SEARCH_DEFAULTS: TriggerSearchOptions = { steps: 80, batchSize: 32, lr: 0.1, cost: 1e-3, costFactor: 1.1, success: 0.9, seed: 1 };

export interface FoundTrigger {
  cls: number;
  /** [1, 1, H, W] and [1, C, H, W], in [0, 1]; the caller disposes them */
  mask: Tensor;
  pattern: Tensor;
  /** L1 norm of the mask (pixels' worth of trigger) */
  maskL1: number;
  /** share of the search images not of class c that the trigger sends to c */
  success: number;
  /** low-side anomaly index of maskL1 among the classes (MAD) */
  anomalyIndex: number;
}

/** Frees the triggers' mask and pattern tensors. */
export function disposeTriggers(triggers: Iterable<FoundTrigger>): void {
  for (const t of triggers) { t.mask.dispose(); t.pattern.dispose(); }
}

export interface SearchResult {
  triggers: FoundTrigger[];
  /** the class with the smallest mask, and whether its anomaly index passes `threshold` */
  suspect: number;
  flagged: boolean;
}

/** Input pixels of one search pass (per channel): ten classes' blocks of 32 images at 32x32. */
export const PASS_PIXELS = 10 * 32 * 32 * 32;

const squash = (w: Tensor): Tensor => w.tanh().add(1).mul(0.5);

/**
 * Searches a trigger per class on `images` (uint8 [N, C, H, W], labels int64 [N]) for a model in eval
 * mode; the model's parameters get no gradient and are left as they were. `start` continues from
 * triggers found before (e.g. on the original model), instead of a random start.
 */
export function searchTriggers(model: nn.Module, images: Tensor, labels: Tensor, norm: Normalization, classes: number, o: TriggerSearchOptions,
  threshold = 2, start: FoundTrigger[] | null = null, progress?: (n: number, total: number) => void): SearchResult {
  const [n, channels, height, width] = images.shape;
  const rng = new Rng(o.seed * 7919 + 17);
  const logit = (u: number): number => Math.atanh(Math.min(0.999, Math.max(-0.999, 2 * u - 1)));
  const init = (count: number, at: (i: number) => number): Float32Array => Float32Array.from({ length: count }, (_, i) => at(i));
  const plane = height * width;
  const maskW = tensor(init(classes * plane, (i) => (start ? logit((start[Math.floor(i / plane)].mask.toArray() as Float32Array)[i % plane]) : logit(0.3 + 0.2 * rng.next()))), [classes, 1, height, width]).requiresGrad_(true);
  const cp = channels * plane;
  const patternW = tensor(init(classes * cp, (i) => (start ? logit((start[Math.floor(i / cp)].pattern.toArray() as Float32Array)[i % cp]) : logit(o.patternStart ?? rng.next()))), [classes, channels, height, width]).requiresGrad_(true);
  const opt = new optim.Adam([maskW, patternW], { lr: o.lr, betas: [0.5, 0.9] });
  const cost = new Float64Array(classes).fill(o.cost);
  // classes stamped in one forward pass: all of them up to 32x32 with ten classes (as every recorded
  // run), fewer for larger images or more classes, so a pass holds about PASS_PIXELS of input
  const perPass = Math.max(1, Math.floor((o.passPixels ?? PASS_PIXELS) / (o.batchSize * plane)));
  const targets = tensor(Float64Array.from({ length: classes * o.batchSize }, (_, i) => Math.floor(i / o.batchSize)), [classes * o.batchSize]).long();
  const params = model.parameters();
  for (const p of params) p.requiresGrad_(false);
  const wasTraining = model.training;
  model.eval();
  const labelArray = labels.toList();
  try {
    for (let k = 0; k < o.steps; k++) {
      const idx = Float64Array.from({ length: o.batchSize }, () => rng.int(n));
      const reached = scope(() => {
        const x = images.indexSelect(0, tensor(idx, [o.batchSize]).long()).to('float32').div(255);
        const out: boolean[] = [];
        // classes [c0, c0 + k) in one pass; each class's mask and pattern get gradient from its own block only
        for (let c0 = 0; c0 < classes; c0 += perPass) scope(() => {
          const k = Math.min(perPass, classes - c0);
          const m = squash(maskW.narrow(0, c0, k)), p = squash(patternW.narrow(0, c0, k));
          const t = targets.narrow(0, c0 * o.batchSize, k * o.batchSize);
          // [k, B, C, H, W] -> [k B, C, H, W]: block c is the batch stamped with class c0 + c's trigger
          const stamped = x.unsqueeze(0).mul(m.neg().add(1).unsqueeze(1)).add(m.mul(p).unsqueeze(1)).view(k * o.batchSize, channels, height, width);
          const logits = model.call(normalizeUnit(stamped, norm));
          const ce = F.crossEntropy(logits, t, { reduction: 'none' }).view(k, o.batchSize).mean(1);
          const l1 = m.abs().sum([1, 2, 3]);
          ce.add(l1.mul(tensor(cost.slice(c0, c0 + k), [k]).to('float32'))).sum().backward();
          const hit = logits.argmax(1).eq(t).view(k, o.batchSize).toList();
          for (let c2 = 0; c2 < k; c2++) {
            let h = 0, n2 = 0;
            for (let b = 0; b < o.batchSize; b++) if (labelArray[idx[b]] !== c0 + c2) { n2++; h += hit[c2 * o.batchSize + b]; }
            out.push(n2 === 0 || h / n2 >= o.success);
          }
        });
        return out;
      });
      opt.step();
      opt.zeroGrad();
      reached.forEach((r, c) => { cost[c] = r ? cost[c] * o.costFactor : cost[c] / o.costFactor ** 1.5; });
      progress?.(o.batchSize * classes, o.steps * o.batchSize * classes);
    }
    const triggers: Omit<FoundTrigger, 'anomalyIndex'>[] = [];
    for (let c = 0; c < classes; c++) {
      const [mask, pattern] = noGrad(() => scope(() => [squash(maskW.narrow(0, c, 1)).detach().clone(), squash(patternW.narrow(0, c, 1)).detach().clone()]));
      triggers.push({ cls: c, mask, pattern, maskL1: scope(() => mask.sum().item()), success: successOf(model, images, labelArray, norm, c, mask, pattern) });
    }
    // on a log scale (mask sizes differ by factors); a class the short search has not quite reached
    // keeps the mask it got to (counting it as infinite would swell the MAD and hide the target)
    const norms = triggers.map((t) => Math.log(Math.max(t.maskL1, 1e-3)));
    const { index, flagged } = anomalyIndices(norms, threshold);
    const suspect = norms.indexOf(Math.min(...norms));
    return { triggers: triggers.map((t, c) => ({ ...t, anomalyIndex: index[c] })), suspect, flagged: flagged[suspect] };
  } finally {
    for (const p of params) p.requiresGrad_(true);
    if (wasTraining) model.train();
    opt.dispose();
    maskW.dispose();
    patternW.dispose();
    targets.dispose();
  }
}

function successOf(model: nn.Module, images: Tensor, labels: number[], norm: Normalization, c: number, mask: Tensor, pattern: Tensor): number {
  let hits = 0, total = 0;
  noGrad(() => forEachEvalBatch(images, (s, m) => {
    const pred = scope(() => {
      const x = applyMask(images.narrow(0, s, m).to('float32').div(255), mask, pattern);
      return model.call(normalizeUnit(x, norm)).argmax(1).toList();
    });
    pred.forEach((p, i) => { if (labels[s + i] !== c) { total++; if (p === c) hits++; } });
  }));
  return total ? hits / total : 0;
}
