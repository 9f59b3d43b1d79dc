// ANP, Adversarial Neuron Pruning (Wu and Wang 2021): learn a mask m in [0, 1] per batch-norm neuron
// such that the masked model stays right on clean data even when every BN weight and bias is
// multiplicatively perturbed (a random start within +-eps plus a signed ascent step); backdoor neurons are the ones such perturbations expose,
// and their masks fall. Neurons whose mask ends below a threshold are pruned (BN weight := 0, as the
// official pruning(); the bias stays, so a pruned neuron outputs its constant bias).
// As the official code (csdongxian/ANP_backdoor): per batch a random start in [-eps, eps], then
// `steps` signed steps of eps / steps with no projection (its noise optimiser is plain SGD on the
// sign of the gradient), so one step from a random start reaches up to 2 eps. Differs: the
// threshold is chosen on the validation part of the clean split (chooseThreshold), never by ASR.
// Only the defender's clean data is read.
import { z } from 'zod';
import { F, manualSeed, nn, noGrad, ones, optim, scope, Tensor, tensor, zeros } from '../torch/compute';
import { defineDefense } from './method';
import { ImageSet } from '../data/image-set';
import { normalize, Normalization } from '../train/loop';
import { Rng } from '../util/rng';
import { accuracyOn, DefenseData, DefenseHooks, disposeState, restore, snapshot, zeroChannels } from './common';

export const ANP_SCHEMA = z.object({
  /** mask-optimisation steps (the authors: 2000) */
  iterations: z.number().int().min(1),
  /** if set, run this many passes over the clean training data instead of `iterations` */
  epochs: z.number().int().min(1).nullable(),
  batchSize: z.number().int().min(1),
  /** perturbation budget: the random start of each BN weight's and bias's relative perturbation is uniform in [-eps, eps] */
  eps: z.number().min(0),
  /** signed-gradient ascent steps per batch on the perturbation (step size eps / steps) */
  steps: z.number().int().min(1),
  /** weight of the unperturbed loss: alpha L_nat + (1 - alpha) L_rob */
  alpha: z.number().min(0).max(1),
  /** mask SGD */
  lr: z.number().positive(),
  momentum: z.number().min(0).max(1),
  /** a fixed pruning threshold on the mask, or 'auto': the sweep below on the validation data */
  threshold: z.union([z.number().min(0).max(1), z.literal('auto')], { errorMap: () => ({ message: "expected a number in [0, 1] or 'auto'" }) }),
  /** auto: thresholds tried in increasing order; the largest kept before validation accuracy drops by more than `tolerance` */
  thresholds: z.array(z.number().min(0).max(1)).min(1),
  tolerance: z.number().min(0).max(1),
  seed: z.number().int().min(0),
}).strict();
export type AnpOptions = z.infer<typeof ANP_SCHEMA>;

export const ANP_DEFAULTS: AnpOptions = {
  iterations: 2000, epochs: null, batchSize: 128, eps: 0.4, steps: 1, alpha: 0.2, lr: 0.2, momentum: 0.9,
  threshold: 'auto', thresholds: Array.from({ length: 19 }, (_, i) => Math.round((i + 1) * 5) / 100), tolerance: 0.02, seed: 1,
};

export interface BnLayer { name: string; bn: nn.BatchNorm2d }

/** One BN layer under ANP: its mask and its current perturbation of weight and bias. */
export interface AnpNeurons extends BnLayer { mask: Tensor; noiseW: Tensor; noiseB: Tensor }

/** The masked, optionally perturbed BN forward, installed on every BN of the model until `remove()`. */
export class AnpState {
  perturbed = false;
  readonly layers: AnpNeurons[];
  constructor(readonly model: nn.Module) {
    const bns = model.namedModules().filter(([, m]) => m instanceof nn.BatchNorm2d) as [string, nn.BatchNorm2d][];
    if (bns.length === 0) throw new Error('anp: the model has no batch-norm layer to mask');
    this.layers = bns.map(([name, bn]) => {
      const c = bn.numFeatures;
      const l = { name, bn, mask: ones([c]).requiresGrad_(true), noiseW: zeros([c]).requiresGrad_(true), noiseB: zeros([c]).requiresGrad_(true) };
      // as the official NoisyBatchNorm2d: weight * (mask + noise_w), bias * (1 + noise_b)
      bn.forward = (x: Tensor): Tensor => {
        const w = bn.weight.mul(this.perturbed ? l.mask.add(l.noiseW) : l.mask);
        const b = this.perturbed ? bn.bias.mul(l.noiseB.add(1)) : bn.bias;
        return F.batchNorm(x, bn.runningMean, bn.runningVar, w, b, { training: bn.training, momentum: bn.momentum ?? 0.1, eps: bn.eps });
      };
      // (a forward replaced on the instance marks the BN intercepted: eval-mode inference never folds it into the conv)
      return l;
    });
  }

  get masks(): Tensor[] { return this.layers.map((l) => l.mask); }
  get noises(): Tensor[] { return this.layers.flatMap((l) => [l.noiseW, l.noiseB]); }

  remove(): void {
    for (const l of this.layers) {
      Reflect.deleteProperty(l.bn, 'forward');
      for (const t of [l.mask, l.noiseW, l.noiseB]) t.dispose();
    }
  }
}

function clearGrads(ts: Tensor[]): void {
  for (const t of ts) {
    const g = t.grad;
    if (g) { t.grad = null; g.dispose(); }
  }
}

/**
 * The adversarial neuron perturbation for one batch, as the official reset() + noise optimiser: a
 * random start in [-eps, eps] (randomStart) or zero, then `steps` signed-gradient ascent steps of
 * eps / steps on the cross-entropy, not projected (from a random start it can reach 2 eps, as the
 * official code). Leaves no gradient on the masks or the perturbations.
 */
export function perturb(s: AnpState, x: Tensor, y: Tensor, eps: number, steps: number, randomStart = true): void {
  noGrad(() => { for (const t of s.noises) if (randomStart) t.uniform_(-eps, eps); else t.zero_(); });
  for (let k = 0; k < steps; k++) {
    s.perturbed = true;
    scope(() => F.crossEntropy(s.model.call(x), y).backward());
    noGrad(() => scope(() => {
      for (const t of s.noises) {
        const g = t.grad;
        if (g) t.add_(g.sign(), eps / steps);
      }
    }));
    clearGrads([...s.noises, ...s.masks]);
  }
}

/** Sets the BN weight to 0 for every neuron whose mask is below `threshold` (the bias stays, as the official pruning()); returns them by layer. */
export function pruneBelow(layers: BnLayer[], masks: Float32Array[], threshold: number): Record<string, number[]> {
  const pruned: Record<string, number[]> = {};
  layers.forEach((l, i) => {
    const dead = Array.from(masks[i]).flatMap((m, c) => (m < threshold ? [c] : []));
    if (!dead.length) return;
    pruned[l.name] = dead;
    zeroChannels([{ t: l.bn.weight, dim: 0 }], dead);
  });
  return pruned;
}

export interface SweepEntry { threshold: number; pruned: number; valAcc: number }

/**
 * The threshold from the validation data alone: thresholds in increasing order, each pruning from the
 * original weights; the largest one reached before the validation accuracy first falls more than
 * `tolerance` below the unpruned model's (0 = prune nothing). The model is left unpruned.
 */
export function chooseThreshold(model: nn.Module, layers: BnLayer[], masks: Float32Array[], val: ImageSet, norm: Normalization,
  thresholds: number[], tolerance: number): { threshold: number; valAccBefore: number; sweep: SweepEntry[] } {
  const original = snapshot(model);
  const valAccBefore = accuracyOn(model, val, norm);
  const sweep: SweepEntry[] = [];
  let threshold = 0;
  for (const t of [...thresholds].sort((a, b) => a - b)) {
    const pruned = Object.values(pruneBelow(layers, masks, t)).reduce((a, p) => a + p.length, 0);
    const valAcc = accuracyOn(model, val, norm);
    restore(model, original);
    sweep.push({ threshold: t, pruned, valAcc });
    if (valAcc < valAccBefore - tolerance) break;
    threshold = t;
  }
  disposeState(original);
  return { threshold, valAccBefore, sweep };
}

export interface AnpReport {
  method: 'anp';
  options: AnpOptions;
  iterations: number;
  threshold: number;
  sweep: SweepEntry[];
  neurons: number;
  prunedTotal: number;
  /** pruned neurons per BN layer (only layers with any) */
  prunedPerLayer: Record<string, number>;
  pruned: Record<string, number[]>;
  /** final mask values per BN layer */
  masks: Record<string, number[]>;
  valAccBefore: number;
  valAccAfter: number;
  seconds: number;
}

/** Learns the masks on the clean training data (the model's own weights and buffers are left as they were). */
export function learnMasks(model: nn.Module, data: ImageSet, norm: Normalization, o: AnpOptions, h: DefenseHooks = {}): { layers: BnLayer[]; masks: Float32Array[]; iterations: number } {
  const n = data.labels.numel;
  if (n === 0) throw new Error('anp needs at least one clean image');
  const original = snapshot(model); // train-mode BN moves the running statistics; they are put back
  const params = model.parameters();
  for (const p of params) p.requiresGrad_(false);
  const s = new AnpState(model);
  const opt = new optim.SGD(s.masks, { lr: o.lr, momentum: o.momentum });
  const batches = Math.ceil(n / o.batchSize);
  const iterations = o.epochs !== null ? o.epochs * batches : o.iterations;
  manualSeed(o.seed);
  model.train();
  let perm: Tensor | null = null;
  try {
    for (let it = 0; it < iterations; it++) {
      const b = it % batches;
      if (b === 0) {
        perm?.dispose();
        perm = tensor(new Rng(o.seed * 1009 + it / batches).permutation(n), [n]).long();
      }
      const size = scope(() => {
        const idx = perm!.slice(0, b * o.batchSize, Math.min(n, (b + 1) * o.batchSize));
        const x = normalize(data.images.indexSelect(0, idx), norm);
        const y = data.labels.indexSelect(0, idx);
        if (o.eps > 0) perturb(s, x, y, o.eps, o.steps);
        s.perturbed = false;
        let loss = F.crossEntropy(model.call(x), y).mul(o.alpha);
        if (o.eps > 0) {
          s.perturbed = true;
          loss = loss.add(F.crossEntropy(model.call(x), y).mul(1 - o.alpha));
          s.perturbed = false;
        }
        loss.backward();
        return idx.numel;
      });
      opt.step();
      noGrad(() => { for (const m of s.masks) m.clamp_(0, 1); });
      clearGrads([...s.masks, ...s.noises]);
      h.progress?.('anp masks', size, iterations * Math.min(n, o.batchSize));
    }
    return { layers: s.layers.map(({ name, bn }) => ({ name, bn })), masks: scope(() => s.masks.map((m) => m.detach().toArray() as Float32Array)), iterations };
  } finally {
    perm?.dispose();
    opt.dispose();
    s.remove();
    for (const p of params) p.requiresGrad_(true);
    restore(model, original);
    disposeState(original);
  }
}

export function anp(model: nn.Module, data: DefenseData, o: AnpOptions, h: DefenseHooks = {}): AnpReport {
  const t0 = performance.now();
  const { layers, masks, iterations } = learnMasks(model, data.train, data.norm, o, h);
  const chosen = o.threshold === 'auto'
    ? chooseThreshold(model, layers, masks, data.val, data.norm, o.thresholds, o.tolerance)
    : { threshold: o.threshold, valAccBefore: accuracyOn(model, data.val, data.norm), sweep: [] };
  for (const e of chosen.sweep) h.log?.(`anp threshold ${e.threshold}: ${e.pruned} neurons pruned, validation accuracy ${(100 * e.valAcc).toFixed(2)}%`);
  const pruned = pruneBelow(layers, masks, chosen.threshold);
  const prunedPerLayer = Object.fromEntries(Object.entries(pruned).map(([k, v]) => [k, v.length]));
  return {
    method: 'anp', options: o, iterations, threshold: chosen.threshold, sweep: chosen.sweep,
    neurons: masks.reduce((a, m) => a + m.length, 0), prunedTotal: Object.values(prunedPerLayer).reduce((a, b) => a + b, 0), prunedPerLayer, pruned,
    masks: Object.fromEntries(layers.map((l, i) => [l.name, Array.from(masks[i])])),
    valAccBefore: chosen.valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000,
  };
}

export const ANP = defineDefense({
  name: 'anp', summary: 'ANP: learn BN-neuron masks under adversarial neuron perturbation, prune the low ones',
  schema: ANP_SCHEMA, presets: { default: { ...ANP_DEFAULTS }, 'threshold-0.2': { ...ANP_DEFAULTS, threshold: 0.2 } }, run: anp,
});
