// GAN-based defense, after MESA (Qiao et al. 2019) in its simple public form: for every class c, a
// small generator learns patches that, stamped on clean images of other classes, push the model to c;
// the class reached most easily (the highest mean probability of c over the generator's training) is
// taken as the backdoor's target, and the model is fine-tuned on clean images stamped with that
// class's generated patches under their true labels.
// Simplifications: one generator per class (no ensemble over confidence thresholds), and instead of
// MESA's mutual-information estimator a diversity term: the patches' standard deviation over the batch.
// Only the defender's clean data is read.
import { cat, F, inferenceMode, manualSeed, nn, noGrad, optim, pipe, randn, scope, Tensor, tensor, zeros } from '../torch/compute';
import { ImageSet } from '../data/image-set';
import { Normalization } from '../train/loop';
import { Rng } from '../util/rng';
import { accuracyOn, DefenseData, DefenseHooks, fineTune, FineTuneOptions } from './common';

export interface GanOptions extends FineTuneOptions {
  /** side of the generated square patch, in pixels */
  patchSize: number;
  zDim: number;
  hidden: number;
  /** generator training per class: passes over the clean non-c training images, Adam learning rate */
  generatorEpochs: number;
  generatorLr: number;
  /** the target probability is capped at beta in the generator's loss (the published variant: 0.5) */
  beta: number;
  /** weight of the diversity term */
  diversity: number;
  /** share of each fine-tuning batch stamped with generated patches (true labels kept) */
  stampFraction: number;
  /**
   * where patches go: 'random' (uniform, the published variant) or 'adaptive': half uniform, half
   * drawn towards the positions where the class's patches have worked best so far (see Placement)
   */
  placement: 'random' | 'adaptive';
}

/** The public variant as published: uniform placement, Adam 2e-4. */
export const GAN_PUBLISHED: GanOptions = {
  epochs: 10, lr: 0.01, batchSize: 128, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine', seed: 1,
  patchSize: 3, zDim: 32, hidden: 128, generatorEpochs: 10, generatorLr: 2e-4, beta: 0.5, diversity: 0.1, stampFraction: 0.3, placement: 'random',
};

/**
 * The default: adaptive placement (a backdoor bound to a position is otherwise almost never shown to
 * the generator) and Adam 0.01 (at 2e-4 ten passes over a small clean split barely move the generator).
 */
export const GAN_DEFAULTS: GanOptions = { ...GAN_PUBLISHED, generatorLr: 0.01, placement: 'adaptive' };

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

const toUnit = (images: Tensor): Tensor => scope(() => images.to('float32').div(255));
const normalizeUnit = (x: Tensor, norm: Normalization): Tensor => scope(() => {
  const c = norm.mean.length;
  return x.sub(tensor(norm.mean, [1, c, 1, 1])).div(tensor(norm.std, [1, c, 1, 1]));
});

function otherClasses(set: ImageSet, c: number): Tensor {
  const keepIdx = set.labels.toList().flatMap((l, i) => (l !== c ? [i] : []));
  return tensor(Float64Array.from(keepIdx), [keepIdx.length]).long();
}

export interface Generated {
  g: PatchGenerator;
  placement: Placement;
  /** mean target probability over all of the generator's training samples: how easily class c was reached */
  ease: number;
}

/** Trains G_c on the clean images of the other classes (the model is frozen and in eval mode). */
export function trainGenerator(model: nn.Module, images: Tensor, norm: Normalization, c: number, o: GanOptions, h: DefenseHooks = {}): Generated {
  const [n, channels, height, width] = images.shape;
  manualSeed(o.seed * 1009 + c);
  const rng = new Rng(o.seed * 7919 + c);
  const g = new PatchGenerator(o.zDim, o.hidden, channels, o.patchSize);
  const placement = new Placement(height, width, o.patchSize, o.placement === 'adaptive', rng);
  const opt = new optim.Adam(g.parameters(), { lr: o.generatorLr });
  const batches = Math.ceil(n / o.batchSize);
  let probSum = 0;
  model.eval();
  for (let e = 0; e < o.generatorEpochs; e++) {
    const perm = tensor(rng.permutation(n), [n]).long();
    for (let bi = 0; bi < batches; bi++) {
      const size = scope(() => {
        const idx = perm.slice(0, bi * o.batchSize, Math.min(n, (bi + 1) * o.batchSize));
        const b = idx.numel;
        const p = g.sample(b);
        const positions = placement.sample(b);
        const x = stamp(toUnit(images.indexSelect(0, idx)), p, positions);
        const prob = F.softmax(model.call(normalizeUnit(x, norm)), 1).select(1, c);
        const probs = prob.detach().toArray() as Float32Array;
        placement.update(positions, probs);
        for (const v of probs) probSum += v;
        const diversity = p.std(0, false).mean();
        prob.clamp(null, o.beta).mean().neg().sub(diversity.mul(o.diversity)).backward();
        return b;
      });
      opt.step();
      opt.zeroGrad();
      h.progress?.(`gan generator ${c}`, size, n * o.generatorEpochs);
    }
    perm.dispose();
  }
  opt.dispose();
  return { g, placement, ease: n ? probSum / (n * o.generatorEpochs) : 0 };
}

export interface ClassScore { cls: number; ease: number; success: number; meanProb: number }

/**
 * How often the trained G_c's patches, at positions from its placement (the best ones when adaptive),
 * on clean non-c images make the model answer c, and the mean probability of c.
 */
export function scoreGenerator(model: nn.Module, g: PatchGenerator, placement: Placement, images: Tensor, norm: Normalization, c: number): { success: number; meanProb: number } {
  model.eval();
  const n = images.size(0);
  let hits = 0, prob = 0;
  inferenceMode(() => {
    for (let s = 0; s < n; s += 500) {
      const m = Math.min(500, n - s);
      const [hit, p] = scope(() => {
        const x = stamp(toUnit(images.narrow(0, s, m)), g.sample(m), placement.sample(m, 0));
        const logits = model.call(normalizeUnit(x, norm));
        return [logits.argmax(1).eq(c).sum().item(), F.softmax(logits, 1).select(1, c).sum().item()];
      });
      hits += hit;
      prob += p;
    }
  });
  return { success: n ? hits / n : 0, meanProb: n ? prob / n : 0 };
}

export interface GanReport {
  method: 'gan';
  options: GanOptions;
  /** the class reached most easily (highest `ease`) */
  target: number;
  scores: ClassScore[];
  valAccBefore: number;
  valAccAfter: number;
  seconds: number;
}

export function ganDefense(model: nn.Module, data: DefenseData, o: GanOptions, h: DefenseHooks = {}): GanReport {
  const t0 = performance.now();
  const [, , height, width] = data.train.images.shape;
  if (o.patchSize > Math.min(height, width)) throw new Error(`gan: patchSize ${o.patchSize} exceeds the ${height}x${width} images`);
  const valAccBefore = accuracyOn(model, data.val, data.norm);
  const params = model.parameters();
  for (const p of params) p.requiresGrad_(false);
  const scores: ClassScore[] = [];
  let best: Generated | null = null;
  let target = -1;
  try {
    for (let c = 0; c < data.train.classes; c++) {
      const [trainImages, scoreImages] = scope(() => {
        const tr = otherClasses(data.train, c), va = otherClasses(data.val, c);
        const t = data.train.images.indexSelect(0, tr);
        return [t, cat([t, data.val.images.indexSelect(0, va)], 0)];
      });
      const gp = trainGenerator(model, trainImages, data.norm, c, o, h);
      const s: ClassScore = { cls: c, ease: gp.ease, ...scoreGenerator(model, gp.g, gp.placement, scoreImages, data.norm, c) };
      trainImages.dispose();
      scoreImages.dispose();
      scores.push(s);
      h.log?.(`gan class ${c}: ease ${s.ease.toFixed(3)}; trained patches flip ${(100 * s.success).toFixed(1)}% of clean images (mean probability ${s.meanProb.toFixed(3)})`);
      if (target < 0 || s.ease > scores[target].ease) {
        best?.g.dispose();
        best = gp;
        target = c;
      } else gp.g.dispose();
    }
  } finally {
    for (const p of params) p.requiresGrad_(true);
  }
  const { g: gen, placement } = best!;
  fineTune(model, data.train, data.norm, o, {
    ...h, stage: 'gan fine-tune',
    prepare: (images, labels) => {
      const x = toUnit(images);
      const m = Math.round(o.stampFraction * x.size(0));
      if (m === 0) return [normalizeUnit(x, data.norm), labels];
      const stamped = stamp(x.narrow(0, 0, m), noGrad(() => gen.sample(m)), placement.sample(m));
      return [normalizeUnit(cat([stamped, x.narrow(0, m, x.size(0) - m)], 0), data.norm), labels];
    },
  });
  gen.dispose();
  return { method: 'gan', options: o, target, scores, valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000 };
}
