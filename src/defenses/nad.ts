// NAD, Neural Attention Distillation (Li et al. 2021): fine-tune a copy of the backdoored model on the
// clean data (the teacher), then train the backdoored model (the student) with cross-entropy plus the
// distance between its attention maps and the teacher's at a few intermediate layers.
import { cat, dispose, F, keep, nn, noGrad, scope, Tensor } from '../torch/compute';
import { normalize } from '../train/loop';
import { accuracyOn, DefenseData, DefenseHooks, disposeState, fineTune, FINE_TUNE_DEFAULTS, FineTuneOptions, restore, snapshot } from './common';

export interface NadOptions extends FineTuneOptions {
  /** epochs of clean fine-tuning that make the teacher (same lr, batch and schedule as the student) */
  teacherEpochs: number;
  /** modules whose outputs are distilled, by dotted name */
  layers: string[];
  /** the weight of each layer's attention loss */
  betas: number[];
  /** attention map exponent */
  p: number;
}

// layer2-4 with betas 500/1000/1000 as BackdoorBench; 5 teacher + 10 student epochs, lr 0.01 as its NAD
// (one attention-distilled epoch costs about one plain epoch: the teacher's maps are computed once).
export const NAD_DEFAULTS: NadOptions = { ...FINE_TUNE_DEFAULTS, teacherEpochs: 5, layers: ['layer2', 'layer3', 'layer4'], betas: [500, 1000, 1000], p: 2 };

export interface NadReport {
  method: 'nad';
  options: NadOptions;
  teacherValAcc: number;
  valAccBefore: number;
  valAccAfter: number;
  seconds: number;
}

/** NAD's attention map of activations [B, C, H, W]: mean over channels of |a|^p, flattened per sample, L2-normalised. */
export function attentionMap(a: Tensor, p: number): Tensor {
  return scope(() => F.normalize(a.abs().pow(p).mean(1).flatten(1), 2, 1));
}

/** NAD's attention loss between two maps: mean squared difference. */
export function attentionLoss(as: Tensor, at: Tensor): Tensor {
  return scope(() => as.sub(at).square().mean());
}

/**
 * The teacher's attention maps for every training image, in order. The fine-tuning loop feeds the
 * training images without augmentation and NAD's teacher runs in eval mode, so its maps for an image
 * never change: computing them once replaces a second live model (which no defense can construct
 * without knowing the architecture). Augmented batches would need a live teacher.
 */
function teacherMaps(model: nn.Module, data: DefenseData, layers: nn.Module[], p: number, batchSize: number): Tensor[] {
  const parts: Tensor[][] = layers.map(() => []);
  const hooks = layers.map((m, l) => m.registerForwardHook((_m, _in, out) => { parts[l].push(keep(attentionMap(out, p))); }));
  model.eval();
  const n = data.train.labels.numel;
  noGrad(() => {
    for (let s = 0; s < n; s += batchSize) scope(() => { model.call(normalize(data.train.images.narrow(0, s, Math.min(batchSize, n - s)), data.norm)); });
  });
  for (const hk of hooks) hk.remove();
  const maps = parts.map((ps) => scope(() => cat(ps, 0)));
  dispose(parts);
  return maps.map((m) => keep(m));
}

export function nad(model: nn.Module, data: DefenseData, o: NadOptions, h: DefenseHooks = {}): NadReport {
  if (o.betas.length !== o.layers.length) throw new Error(`nad: ${o.layers.length} layers but ${o.betas.length} betas`);
  const t0 = performance.now();
  const layers = o.layers.map((name) => model.getModule(name));
  const valAccBefore = accuracyOn(model, data.val, data.norm);

  const original = snapshot(model);
  fineTune(model, data.train, data.norm, { ...o, epochs: o.teacherEpochs }, { ...h, stage: 'nad teacher' });
  const teacherValAcc = accuracyOn(model, data.val, data.norm);
  const targets = teacherMaps(model, data, layers, o.p, o.batchSize);
  restore(model, original);
  disposeState(original);
  h.log?.(`nad: teacher validation accuracy ${(100 * teacherValAcc).toFixed(2)}%`);

  // the student's maps of the current batch, taken as the forward pass goes (freed with the batch)
  const current: (Tensor | null)[] = layers.map(() => null);
  const hooks = layers.map((m, l) => m.registerForwardHook((_m, _in, out) => { current[l] = attentionMap(out, o.p); }));
  try {
    fineTune(model, data.train, data.norm, o, {
      ...h, stage: 'nad student',
      extraLoss: (_x, _y, _logits, b) => {
        let total: Tensor | null = null;
        for (let l = 0; l < layers.length; l++) {
          const term = attentionLoss(current[l]!, targets[l].indexSelect(0, b.idx)).mul(o.betas[l]);
          total = total ? total.add(term) : term;
          current[l] = null;
        }
        return total;
      },
    });
  } finally {
    for (const hk of hooks) hk.remove();
    dispose(targets);
  }
  return { method: 'nad', options: o, teacherValAcc, valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000 };
}
