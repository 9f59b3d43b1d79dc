// GAN-based defense, after MESA (Qiao et al. 2019): for every class c, small generators learn triggers
// that, applied to clean images of other classes, push the model to c; the class reached most easily
// (the highest mean probability of c over a generator's training, best over the trigger sizes tried) is
// taken as the backdoor's target, and the model is fine-tuned on clean images carrying that class's
// generated triggers under their true labels.
// The trigger size is searched (square patches of several sides and a full-image blend), since a 3x3
// generator cannot imitate a 5x5, 7x7 or blended trigger. MESA's ensemble over the threshold beta is
// kept for the target class: one generator per beta at its best size, their samples pooled.
// Simplification: instead of MESA's mutual-information entropy estimator, a diversity term (the
// triggers' standard deviation over the batch).
// Only the defender's clean data is read.
import { cat, F, inferenceMode, manualSeed, nn, noGrad, optim, pipe, randn, scope, Tensor, tensor, zeros } from '../torch/compute';
import { ImageSet } from '../data/image-set';
import { forEachEvalBatch, Normalization, normalizeUnit } from '../train/loop';
import { Rng } from '../util/rng';
import { z } from 'zod';
import { accuracyOn, DefenseData, DefenseHooks, fineTune, fineTuneShape } from './common';
import { defineDefense } from './method';

/** a square patch of this side, or 'blend': a full-image pattern mixed in at blendAlpha */
export type TriggerSize = number | 'blend';

// patchSize/beta (one size, one beta: older presets, resolved as before) or triggerSizes/betas (the
// search and MESA's ensemble); exactly one of each pair, checked when the defense starts
export const GAN_SCHEMA = z.object({
  ...fineTuneShape,
  /** side of the generated square patch, in pixels (one size, no search); exclusive with triggerSizes */
  patchSize: z.number().int().min(1).optional(),
  /** the trigger sizes searched per class; exclusive with patchSize */
  triggerSizes: z.array(z.union([z.number().int().min(1), z.literal('blend')], { errorMap: () => ({ message: "expected a patch side >= 1 or 'blend'" }) })).min(1).optional(),
  /** weight of the generated pattern in a 'blend' trigger: x' = (1 - a) x + a p (default 0.2) */
  blendAlpha: z.number().gt(0).max(1).optional(),
  zDim: z.number().int().min(1),
  hidden: z.number().int().min(1),
  /** generator training per class: passes over the clean non-c training images, Adam learning rate */
  generatorEpochs: z.number().int().min(1),
  generatorLr: z.number().positive(),
  /** the target probability is capped at beta in the generator's loss (the published variant: 0.5); exclusive with betas */
  beta: z.number().gt(0).max(1).optional(),
  /**
   * MESA's ensemble: the first beta drives the search over classes and sizes, then the target class
   * gets one generator per beta at its best size, and the fine-tuning draws from all of them
   */
  betas: z.array(z.number().gt(0).max(1)).min(1).optional(),
  /** weight of the diversity term */
  diversity: z.number().min(0),
  /** share of each fine-tuning batch stamped with generated patches (true labels kept) */
  stampFraction: z.number().min(0).max(1),
  /**
   * where patches go: 'random' (uniform, the published variant) or 'adaptive': half uniform, half
   * drawn towards the positions where the class's patches have worked best so far (see Placement)
   */
  placement: z.enum(['random', 'adaptive']),
}).strict();
export type GanOptions = z.infer<typeof GAN_SCHEMA>;

/** The sizes a run searches: triggerSizes, or the single patchSize of older presets. */
export function triggerSizesOf(o: GanOptions): TriggerSize[] {
  const sizes = o.triggerSizes ?? (o.patchSize !== undefined ? [o.patchSize] : undefined);
  if (!sizes || (o.triggerSizes && o.patchSize !== undefined)) throw new Error('gan: give exactly one of the options patchSize and triggerSizes');
  return sizes;
}

/** The betas of the ensemble: betas, or the single beta of older presets. */
export function betasOf(o: GanOptions): number[] {
  const betas = o.betas ?? (o.beta !== undefined ? [o.beta] : undefined);
  if (!betas || (o.betas && o.beta !== undefined)) throw new Error('gan: give exactly one of the options beta and betas');
  return betas;
}

const BASE: Omit<GanOptions, 'patchSize' | 'beta'> = {
  epochs: 10, lr: 0.01, batchSize: 128, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine', seed: 1,
  zDim: 32, hidden: 128, generatorEpochs: 10, generatorLr: 2e-4, diversity: 0.1, stampFraction: 0.3, placement: 'random',
};

/**
 * One 3x3 generator per class, beta 0.5, uniform placement, Adam 2e-4: the official code's size,
 * optimiser rate and lowest beta, not its full setting (MINE, the beta ensemble and 1% stamping at lr
 * 1e-3 differ: docs/fidelity.md).
 */
export const GAN_PUBLISHED: GanOptions = { ...BASE, patchSize: 3, beta: 0.5 };

/**
 * The default: the trigger-size search and MESA's beta ensemble (the official code's betas 0.5, 0.8,
 * 0.9, pooled within each batch where it switches generator per epoch: docs/fidelity.md), adaptive
 * placement (a backdoor bound to a position is otherwise almost never shown to the generator) and Adam
 * 0.01 (at 2e-4 ten passes over a small clean split barely move the generator).
 */
export const GAN_DEFAULTS: GanOptions = {
  ...BASE, triggerSizes: [3, 5, 7, 'blend'], blendAlpha: 0.2, betas: [0.5, 0.8, 0.9], generatorLr: 0.01, placement: 'adaptive',
};

/** The default before the size search (one adaptive 3x3 generator per class, beta 0.5, Adam 0.01): the docs/results.md tables' gan. */
export const GAN_FIXED_3X3: GanOptions = { ...GAN_PUBLISHED, generatorLr: 0.01, placement: 'adaptive' };

/** NOT the published setting: the default with 5 of its 10 generator epochs, for CPU runs. */
export const GAN_CPU_SHORT: GanOptions = { ...GAN_DEFAULTS, generatorEpochs: 5 };

/** z -> a patch [C, k, k] in [0, 1] (pixel intensity / 255). */
export class PatchGenerator extends nn.Module {
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;
  constructor(readonly zDim: number, hidden: number, readonly channels: number, readonly k: number) {
    super();
    this.fc1 = this.registerModule('fc1', new nn.Linear(zDim, hidden));
    this.fc2 = this.registerModule('fc2', new nn.Linear(hidden, channels * k * k));
  }
  forward(z: Tensor): Tensor {
    return pipe(z, (t) => this.fc1.call(t), (t) => t.relu(), (t) => this.fc2.call(t), (t) => t.sigmoid(), (t) => t.view(-1, this.channels, this.k, this.k));
  }
  sample(n: number): Tensor { return scope(() => this.call(randn([n, this.zDim]))); }
}

/** Top-left corners drawn uniformly so that a k x k patch fits in an h x w image. */
export function randomPositions(n: number, h: number, w: number, k: number, rng: Rng): [number, number][] {
  return Array.from({ length: n }, () => [rng.int(h - k + 1), rng.int(w - k + 1)] as [number, number]);
}

/**
 * Patch positions for one class. A backdoor bound to a location (BadNets' fixed corner) answers a
 * patch at a few positions only, so uniform placement rarely shows it to the generator or to the
 * fine-tuning. 'adaptive' keeps a running value (the target probability reached) per position,
 * optimistic (1) before a first visit, and draws half of the positions from exp((v - max v) / 0.05).
 */
export class Placement {
  readonly values: Float64Array;
  private readonly cols: number;
  constructor(readonly h: number, readonly w: number, readonly k: number, readonly adaptive: boolean, private readonly rng: Rng) {
    this.cols = w - k + 1;
    this.values = new Float64Array((h - k + 1) * this.cols).fill(1);
  }

  /** explore: the share drawn uniformly (the rest from the values; all of them without 'adaptive') */
  sample(n: number, explore = 0.5): [number, number][] {
    if (!this.adaptive) return randomPositions(n, this.h, this.w, this.k, this.rng);
    const top = Math.max(...this.values);
    const cum = Float64Array.from(this.values, (v) => Math.exp((v - top) / 0.05));
    for (let i = 1; i < cum.length; i++) cum[i] += cum[i - 1];
    return Array.from({ length: n }, () => {
      let p = this.rng.int(cum.length);
      if (this.rng.next() >= explore) {
        const u = this.rng.next() * cum[cum.length - 1];
        p = cum.findIndex((c) => c > u);
      }
      return [Math.floor(p / this.cols), p % this.cols] as [number, number];
    });
  }

  update(positions: [number, number][], probs: ArrayLike<number>): void {
    if (!this.adaptive) return;
    positions.forEach(([r, c], i) => { const p = r * this.cols + c; this.values[p] += 0.5 * (probs[i] - this.values[p]); });
  }
}

/** Images x [B, C, H, W] in [0, 1] with patch b [C, k, k] pasted at positions[b] (top-left); differentiable in the patches. */
export function stamp(x: Tensor, patches: Tensor, positions: [number, number][]): Tensor {
  return scope(() => {
    const [b, c, h, w] = x.shape;
    const k = patches.size(2);
    const idx = new Float64Array(b * h * w).fill(k * k); // k*k: the zero appended after each patch
    const mask = new Float32Array(b * h * w);
    positions.forEach(([r, col], i) => {
      if (r < 0 || col < 0 || r + k > h || col + k > w) throw new Error(`stamp: a ${k}x${k} patch at (${r}, ${col}) leaves the ${h}x${w} image`);
      for (let u = 0; u < k; u++) for (let v = 0; v < k; v++) {
        const p = i * h * w + (r + u) * w + col + v;
        idx[p] = u * k + v;
        mask[p] = 1;
      }
    });
    const flat = cat([patches.reshape(b, c, k * k), zeros([b, c, 1])], 2);
    const canvas = flat.gather(2, tensor(idx, [b, 1, h * w]).long().expand(b, c, h * w)).view(b, c, h, w);
    return x.mul(tensor(mask, [b, 1, h, w]).neg().add(1)).add(canvas);
  });
}

/** Images x [B, C, H, W] in [0, 1] with generated triggers: patches pasted at positions, or full-image patterns blended in. */
export function applyGenerated(x: Tensor, triggers: Tensor, positions: [number, number][], size: TriggerSize, blendAlpha: number): Tensor {
  if (size !== 'blend') return stamp(x, triggers, positions);
  return scope(() => x.mul(1 - blendAlpha).add(triggers.mul(blendAlpha)));
}

const toUnit = (images: Tensor): Tensor => scope(() => images.to('float32').div(255));
function otherClasses(set: ImageSet, c: number): Tensor {
  const keepIdx = set.labels.toList().flatMap((l, i) => (l !== c ? [i] : []));
  return tensor(Float64Array.from(keepIdx), [keepIdx.length]).long();
}

export interface Generated {
  g: PatchGenerator;
  placement: Placement;
  size: TriggerSize;
  /** mean target probability over all of the generator's training samples: how easily class c was reached */
  ease: number;
}

/** The generator's side for a trigger size (a blend covers the square image). */
function sideOf(size: TriggerSize, height: number, width: number): number {
  if (size !== 'blend') {
    if (size > Math.min(height, width)) throw new Error(`gan: trigger size ${size} exceeds the ${height}x${width} images`);
    return size;
  }
  if (height !== width) throw new Error(`gan: a 'blend' trigger needs square images, got ${height}x${width}`);
  return height;
}

/**
 * Trains G_c for one trigger size and beta on the clean images of the other classes (the model is
 * frozen and in eval mode). `variant` tells the generators of one class apart in the seeds (0: the
 * seeds of the single-size, single-beta defense).
 */
export function trainGenerator(model: nn.Module, images: Tensor, norm: Normalization, c: number, o: GanOptions, size: TriggerSize, beta: number, variant = 0, h: DefenseHooks = {}): Generated {
  const [n, channels, height, width] = images.shape;
  const k = sideOf(size, height, width);
  const alpha = o.blendAlpha ?? 0.2;
  manualSeed(o.seed * 1009 + c + 100 * variant);
  const rng = new Rng(o.seed * 7919 + c + 100 * variant);
  const g = new PatchGenerator(o.zDim, o.hidden, channels, k);
  const placement = new Placement(height, width, k, o.placement === 'adaptive', rng);
  const opt = new optim.Adam(g.parameters(), { lr: o.generatorLr });
  const batches = Math.ceil(n / o.batchSize);
  let probSum = 0;
  model.eval();
  for (let e = 0; e < o.generatorEpochs; e++) {
    const perm = tensor(rng.permutation(n), [n]).long();
    for (let bi = 0; bi < batches; bi++) {
      const count = scope(() => {
        const idx = perm.slice(0, bi * o.batchSize, Math.min(n, (bi + 1) * o.batchSize));
        const b = idx.numel;
        const p = g.sample(b);
        const positions = placement.sample(b);
        const x = applyGenerated(toUnit(images.indexSelect(0, idx)), p, positions, size, alpha);
        const prob = F.softmax(model.call(normalizeUnit(x, norm)), 1).select(1, c);
        const probs = prob.detach().toArray() as Float32Array;
        placement.update(positions, probs);
        for (const v of probs) probSum += v;
        const diversity = p.std(0, false).mean();
        prob.clamp(null, beta).mean().neg().sub(diversity.mul(o.diversity)).backward();
        return b;
      });
      opt.step();
      opt.zeroGrad();
      h.progress?.(`gan generator ${c} (${size}, beta ${beta})`, count, n * o.generatorEpochs);
    }
    perm.dispose();
  }
  opt.dispose();
  return { g, placement, size, ease: n ? probSum / (n * o.generatorEpochs) : 0 };
}

export interface SizeEase { size: TriggerSize; ease: number }
export interface SizeScore extends SizeEase { score: number }

/**
 * Below this spread of the classes' eases (probability units), differences are noise: at sizes where no
 * class is reached, single classes' eases reach 0.05 on the planted fixtures and move by 0.02 with the CPU's
 * kernels (test/defenses/gan.test.ts); at 0.03 such an ease scores under 1.7, every target there at least 4.
 */
export const EASE_SPREAD_FLOOR = 0.03;

/**
 * The size search, over eases[class][size] (every class tried at the same sizes, in the same order).
 * A bigger trigger reaches every class more easily (measured on the planted fixture: at 7x7 all ten
 * classes reach 0.1-0.47, the 3x3 target 0.47), so raw eases are not comparable across sizes: each
 * ease is scored against the other classes at the same size, as a robust z-score
 * (ease - median) / max(1.4826 MAD, EASE_SPREAD_FLOOR). A class's score is its best over the sizes
 * (the first size on a tie); the target is the class with the highest score (the first on a tie).
 */
export function pickTarget(eases: SizeEase[][]): { target: number; best: SizeScore[] } {
  if (eases.length === 0) throw new Error('gan: no class to search');
  const sizes = eases[0].length;
  if (sizes === 0 || eases.some((row) => row.length !== sizes)) throw new Error('gan: every class needs an ease for each trigger size');
  const median = (xs: number[]): number => {
    const v = [...xs].sort((a, b) => a - b), m = v.length >> 1;
    return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
  };
  const scored = eases.map((row) => row.map((e) => ({ ...e, score: 0 })));
  for (let j = 0; j < sizes; j++) {
    const col = eases.map((row) => row[j].ease);
    const mid = median(col);
    const spread = Math.max(1.4826 * median(col.map((x) => Math.abs(x - mid))), EASE_SPREAD_FLOOR);
    scored.forEach((row) => { row[j].score = (row[j].ease - mid) / spread; });
  }
  const best = scored.map((row) => row.reduce((a, b) => (b.score > a.score ? b : a)));
  const target = best.reduce((t, s, c) => (s.score > best[t].score ? c : t), 0);
  return { target, best };
}

export interface ClassScore {
  cls: number;
  /** the class's best score over the sizes tried (pickTarget), at the first beta */
  score: number;
  /** the size of that score, and the class's ease there */
  size: TriggerSize;
  ease: number;
  /** the ease of every size tried, in triggerSizes order */
  eases: SizeEase[];
  success: number;
  meanProb: number;
}

/**
 * How often the trained G_c's triggers, at positions from its placement (the best ones when adaptive),
 * on clean non-c images make the model answer c, and the mean probability of c.
 */
export function scoreGenerator(model: nn.Module, gen: Generated, images: Tensor, norm: Normalization, c: number, blendAlpha: number): { success: number; meanProb: number } {
  model.eval();
  let hits = 0, prob = 0;
  inferenceMode(() => forEachEvalBatch(images, (s, m) => {
    const [hit, p] = scope(() => {
      const x = applyGenerated(toUnit(images.narrow(0, s, m)), gen.g.sample(m), gen.placement.sample(m, 0), gen.size, blendAlpha);
      const logits = model.call(normalizeUnit(x, norm));
      return [logits.argmax(1).eq(c).sum().item(), F.softmax(logits, 1).select(1, c).sum().item()];
    });
    hits += hit;
    prob += p;
  }));
  const n = images.size(0);
  return { success: n ? hits / n : 0, meanProb: n ? prob / n : 0 };
}

export interface GanReport {
  method: 'gan';
  options: GanOptions;
  /** the class reached most easily (highest score, see pickTarget) */
  target: number;
  /** the target's best trigger size, used by the fine-tuning */
  targetSize: TriggerSize;
  scores: ClassScore[];
  valAccBefore: number;
  valAccAfter: number;
  seconds: number;
}

export function ganDefense(model: nn.Module, data: DefenseData, o: GanOptions, h: DefenseHooks = {}): GanReport {
  const t0 = performance.now();
  const [, , height, width] = data.train.images.shape;
  const sizes = triggerSizesOf(o), betas = betasOf(o);
  for (const size of sizes) sideOf(size, height, width);
  const alpha = o.blendAlpha ?? 0.2;
  const valAccBefore = accuracyOn(model, data.val, data.norm);
  const params = model.parameters();
  for (const p of params) p.requiresGrad_(false);
  const scores: ClassScore[] = [];
  const trained: Generated[][] = [];
  let ensemble: Generated[] = [];
  // every generator not yet freed, so that an error frees them all
  const live = new Set<Generated>();
  const keep = (g: Generated): Generated => (live.add(g), g);
  const free = (g: Generated): void => { live.delete(g); g.g.dispose(); };
  let target = -1;
  const imagesOf = (c: number): [Tensor, Tensor] => scope(() => {
    const tr = otherClasses(data.train, c), va = otherClasses(data.val, c);
    const t = data.train.images.indexSelect(0, tr);
    return [t, cat([t, data.val.images.indexSelect(0, va)], 0)];
  });
  try {
    for (let c = 0; c < data.train.classes; c++) {
      const [trainImages, scoreImages] = imagesOf(c);
      scoreImages.dispose();
      trained.push(sizes.map((size, i) => keep(trainGenerator(model, trainImages, data.norm, c, o, size, betas[0], i, h))));
      trainImages.dispose();
    }
    const eases = trained.map((row) => row.map(({ size, ease }) => ({ size, ease })));
    const pick = pickTarget(eases);
    target = pick.target;
    for (const [c, row] of trained.entries()) {
      const j = eases[c].indexOf(eases[c].find((e) => e.size === pick.best[c].size)!);
      const [trainImages, scoreImages] = imagesOf(c);
      trainImages.dispose();
      const s: ClassScore = { cls: c, score: pick.best[c].score, size: row[j].size, ease: row[j].ease, eases: eases[c], ...scoreGenerator(model, row[j], scoreImages, data.norm, c, alpha) };
      scoreImages.dispose();
      scores.push(s);
      h.log?.(`gan class ${c}: score ${s.score.toFixed(2)} at size ${s.size} (eases ${eases[c].map((e) => `${e.size}: ${e.ease.toFixed(3)}`).join(', ')}); trained triggers flip ${(100 * s.success).toFixed(1)}% of clean images (mean probability ${s.meanProb.toFixed(3)})`);
      for (const [i, g] of row.entries()) if (c !== target || i !== j) free(g);
      if (c === target) ensemble = [row[j]];
    }
    trained.length = 0;
    // MESA's ensemble: the target's other betas, at its best size
    const sizeIndex = sizes.indexOf(scores[target].size);
    const tr = scope(() => data.train.images.indexSelect(0, otherClasses(data.train, target)));
    betas.slice(1).forEach((beta, j) => ensemble.push(keep(trainGenerator(model, tr, data.norm, target, o, scores[target].size, beta, sizeIndex + sizes.length * (j + 1), h))));
    tr.dispose();
  } catch (e) {
    for (const g of [...live]) free(g);
    throw e;
  } finally {
    for (const p of params) p.requiresGrad_(true);
  }
  const targetSize = scores[target].size;
  fineTune(model, data.train, data.norm, o, {
    ...h, stage: 'gan fine-tune',
    prepare: (images, labels) => {
      const x = toUnit(images);
      const m = Math.round(o.stampFraction * x.size(0));
      if (m === 0) return [normalizeUnit(x, data.norm), labels];
      // the union of the ensemble's samples: the stamped rows split evenly over its generators
      const parts: Tensor[] = [];
      ensemble.forEach((gen, j) => {
        const from = Math.floor((j * m) / ensemble.length), to = Math.floor(((j + 1) * m) / ensemble.length);
        if (to > from) parts.push(applyGenerated(x.narrow(0, from, to - from), noGrad(() => gen.g.sample(to - from)), gen.placement.sample(to - from), gen.size, alpha));
      });
      return [normalizeUnit(cat([...parts, x.narrow(0, m, x.size(0) - m)], 0), data.norm), labels];
    },
  });
  for (const g of ensemble) free(g);
  return { method: 'gan', options: o, target, targetSize, scores, valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000 };
}

export const GAN = defineDefense({
  name: 'gan', summary: 'GAN-based (MESA-style): generate triggers per class, fine-tune on clean images stamped with the target\'s',
  // default: the trigger-size search [3, 5, 7, blend] and the beta ensemble; 'published': the simple
  // public form (one 3x3 generator, one beta); 'fixed-3x3': the default before the search (resolves as
  // it did, for the existing results); 'cpu-short': NOT published, 5 of the 10 generator epochs
  schema: GAN_SCHEMA, presets: { default: { ...GAN_DEFAULTS }, published: { ...GAN_PUBLISHED }, 'fixed-3x3': { ...GAN_FIXED_3X3 }, 'cpu-short': { ...GAN_CPU_SHORT } }, run: ganDefense,
});
