// NAD, Neural Attention Distillation (Li et al. 2021): fine-tune a copy of the backdoored model on the
// clean data (the teacher), then train the backdoored model (the student) with cross-entropy plus the
// distance between its attention maps and the teacher's at a few intermediate layers.
import { cat, dispose, F, keep, nn, noGrad, scope, Tensor } from '../torch/compute';
import { normalize } from '../train/loop';
import { z } from 'zod';
import { accuracyOn, DefenseData, DefenseHooks, disposeState, fineTune, FINE_TUNE_DEFAULTS, fineTuneShape, publishedFineTuneShape, restore, snapshot } from './common';
import { defineDefense } from './method';
import { stages } from './stages';

export const NAD_SCHEMA = z.object({
  ...fineTuneShape, ...publishedFineTuneShape,
  /** epochs of clean fine-tuning that make the teacher (same lr, batch and schedule as the student) */
  teacherEpochs: z.number().int().min(1),
  /** modules whose outputs are distilled, by dotted name */
  layers: z.array(z.string().min(1)).min(1),
  /** the weight of each layer's attention loss */
  betas: z.array(z.number().min(0)).min(1),
  /** attention map exponent */
  p: z.number().positive(),
}).strict();
export type NadOptions = z.infer<typeof NAD_SCHEMA>;

// layer2-4 with betas 500/1000/1000 as BackdoorBench; 5 teacher + 10 student epochs, lr 0.01 as its NAD
// (one attention-distilled epoch costs about one plain epoch: the teacher's maps are computed once).
export const NAD_DEFAULTS: NadOptions = { ...FINE_TUNE_DEFAULTS, teacherEpochs: 5, layers: ['layer2', 'layer3', 'layer4'], betas: [500, 1000, 1000], p: 2 };

/**
 * The published schedule (bboylyg/NAD main.py and config, as BackdoorBench's nad.py): SGD with Nesterov
 * momentum 0.9, weight decay 1e-4, batch 64, lr 0.1 for epochs 0-1 then 0.01 (its adjust_learning_rate),
 * 20 student epochs, a teacher fine-tuned 10 epochs (te_epochs) the same way, betas 500/1000/1000 on
 * layer2-4, p = 2, and a random crop (padding 4) of every batch, so the teacher runs live on it. NAD's
 * code (CIFAR-10 only) also flips; for CIFAR-like data set augment=crop-flip.
 */
export const NAD_PUBLISHED: NadOptions = {
  ...NAD_DEFAULTS, epochs: 20, teacherEpochs: 10, lr: 0.1, schedule: 'step', milestones: [2], batchSize: 64, momentum: 0.9, nesterov: true,
  weightDecay: 1e-4, augment: 'crop',
};

export interface NadReport {
  method: 'nad';
  options: NadOptions;
  /** the layers whose attention maps were aligned (the options' names, or the stages found in their place) */
  layers: string[];
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
 * never change: computing them once saves the teacher's forward pass in every epoch. Augmented batches
 * need a live teacher (a clone): see nad().
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
  const { names, layers } = nadLayers(model, data, o, h);
  const valAccBefore = accuracyOn(model, data.val, data.norm);

  const original = snapshot(model);
  fineTune(model, data.train, data.norm, { ...o, epochs: o.teacherEpochs }, { ...h, stage: 'nad teacher', resumable: true });
  const teacherValAcc = accuracyOn(model, data.val, data.norm);
  // Without augmentation the teacher's maps are computed once per image. With it each batch is new, so
  // the teacher (a clone) runs live on the augmented batch, in eval mode, in the loop's `prepare`.
  const live = (o.augment ?? 'none') !== 'none';
  const teacher = live ? model.clone().eval() : null;
  const targets = live ? [] : teacherMaps(model, data, layers, o.p, o.batchSize);
  restore(model, original);
  disposeState(original);
  h.log?.(`nad: teacher validation accuracy ${(100 * teacherValAcc).toFixed(2)}%`);

  // the maps of the current batch, taken as the forward pass goes (freed with the batch): the
  // student's, and with a live teacher the teacher's (its own modules at the same paths)
  const current: (Tensor | null)[] = layers.map(() => null);
  const teacherCurrent: (Tensor | null)[] = layers.map(() => null);
  const hooks = layers.map((m, l) => m.registerForwardHook((_m, _in, out) => { current[l] = attentionMap(out, o.p); }));
  if (teacher) names.forEach((n, l) => hooks.push(teacher.getModule(n).registerForwardHook((_m, _in, out) => { teacherCurrent[l] = attentionMap(out, o.p); })));
  try {
    fineTune(model, data.train, data.norm, o, {
      ...h, stage: 'nad student', resumable: true,
      prepare: (images, labels) => {
        const x = normalize(images, data.norm);
        if (teacher) noGrad(() => { teacher.call(x).dispose(); });
        return [x, labels];
      },
      extraLoss: (_x, _y, _logits, b) => {
        let total: Tensor | null = null;
        for (let l = 0; l < layers.length; l++) {
          const target = teacher ? teacherCurrent[l]! : targets[l].indexSelect(0, b.idx);
          const term = attentionLoss(current[l]!, target).mul(o.betas[l]);
          total = total ? total.add(term) : term;
          current[l] = null;
          teacherCurrent[l] = null;
        }
        return total;
      },
    });
  } finally {
    for (const hk of hooks) hk.remove();
    dispose(targets);
    teacher?.dispose();
  }
  return { method: 'nad', options: o, layers: names, teacherValAcc, valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000 };
}

/**
 * The layers whose attention maps NAD aligns: those named, when the model has them all (the default,
 * ResNet's layer2-4, on the ResNets); when the model has none of the default names, its last stages
 * found from the graph (./stages.ts: on a ResNet-18 exactly layer2-4), as many as there are betas.
 */
function nadLayers(model: nn.Module, data: DefenseData, o: NadOptions, h: DefenseHooks): { names: string[]; layers: nn.Module[] } {
  const has = (name: string): boolean => { try { model.getModule(name); return true; } catch { return false; } };
  const isDefault = o.layers.length === NAD_DEFAULTS.layers.length && o.layers.every((l, i) => l === NAD_DEFAULTS.layers[i]);
  if (!isDefault || o.layers.some(has)) return { names: o.layers, layers: o.layers.map((name) => model.getModule(name)) };
  const found = stages(model, data);
  if (found.length < o.layers.length) throw new Error(`nad: the model has ${found.length} stage${found.length === 1 ? '' : 's'} (resolutions ${found.map((s) => `${s.height}x${s.width}`).join(', ')}), ${o.layers.length} needed for ${o.layers.length} betas; name the layers with --set layers=...`);
  const last = found.slice(found.length - o.layers.length);
  h.log?.(`nad: no ${o.layers.join('/')} in this model: the last ${last.length} stages instead, ${last.map((s) => `${s.name} (${s.channels}x${s.height}x${s.width})`).join(', ')}`);
  return { names: last.map((s) => s.name), layers: last.map((s) => s.module) };
}

export const NAD = defineDefense({
  name: 'nad', summary: 'NAD: distil the attention maps of a clean-fine-tuned teacher into the model',
  schema: NAD_SCHEMA, presets: { default: { ...NAD_DEFAULTS }, published: { ...NAD_PUBLISHED } }, run: nad,
});
