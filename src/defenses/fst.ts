// FST, Feature Shift Tuning (Min et al., NeurIPS 2023): re-initialise the linear head, fine-tune the
// whole model with cross-entropy + alpha * <W, W_orig> (W the head's weight, W_orig the backdoored
// one), and rescale W to ||W_orig|| after every step. The penalty turns the head away from the
// backdoored one, so the features have to shift to fit it, which detaches them from the trigger.
// As the official code (AISafety-HKUST/stable_backdoor_purification, fine_tune/ft.py, ft_mode 'fst').
import { manualSeed, nn, noGrad, scope, Tensor } from '../torch/compute';
import { z } from 'zod';
import { accuracyOn, DefenseData, DefenseHooks, fineTune, FINE_TUNE_DEFAULTS, fineTuneShape, numbers, publishedFineTuneShape } from './common';
import { defineDefense } from './method';

export const FST_SCHEMA = z.object({
  ...fineTuneShape, ...publishedFineTuneShape,
  /** weight of the inner product with the original head */
  alpha: z.number().min(0),
  /** the head by dotted module name; null = the model's last linear layer */
  head: z.string().min(1).nullable(),
}).strict();
export type FstOptions = z.infer<typeof FST_SCHEMA>;

// the official defaults: SGD lr 0.01, momentum 0.9, no weight decay, cosine over 10 epochs, batch 128, alpha 0.2
export const FST_DEFAULTS: FstOptions = { ...FINE_TUNE_DEFAULTS, weightDecay: 0, epochs: 10, lr: 0.01, alpha: 0.2, head: null };

export interface FstReport {
  method: 'fst';
  options: FstOptions;
  head: string;
  /** ||W_orig||, which W keeps after every step */
  headNorm: number;
  headNormAfter: number;
  /** <W, W_orig> / ||W_orig||^2 right after re-initialisation and at the end of each epoch */
  overlapInit: number;
  overlapByEpoch: number[];
  valAccBefore: number;
  valAccAfter: number;
  seconds: number;
}

export function findHead(model: nn.Module, name: string | null): [string, nn.Linear] {
  if (name !== null) {
    const m = model.getModule(name);
    if (!(m instanceof nn.Linear)) throw new Error(`fst: '${name}' is not a linear layer`);
    return [name, m];
  }
  const linears = model.namedModules().filter(([, m]) => m instanceof nn.Linear);
  if (!linears.length) throw new Error('fst: the model has no linear layer to use as the head');
  return linears[linears.length - 1] as [string, nn.Linear];
}

/** PyTorch's default init of the head, seeded: weight and bias uniform in +-1/sqrt(fan_in) (as the official code). */
export function reinitHead(head: nn.Linear, seed: number): void {
  manualSeed(seed);
  const bound = 1 / Math.sqrt(head.inFeatures);
  noGrad(() => {
    head.weight.uniform_(-bound, bound);
    head.bias?.uniform_(-bound, bound);
  });
}

/** FST's extra loss term: alpha * sum(W * W_orig). */
export function fstPenalty(w: Tensor, wOrig: Tensor, alpha: number): Tensor {
  return scope(() => w.mul(wOrig).sum().mul(alpha));
}

/** W := W * norm / ||W||, in place (after each optimiser step). */
export function rescaleTo(w: Tensor, norm: number): void {
  noGrad(() => scope(() => {
    const n = w.norm();
    w.mul_(norm).div_(n);
  }));
}

const dot = (a: Tensor, b: Tensor): number => scope(() => a.mul(b).sum().item());

export function fst(model: nn.Module, data: DefenseData, o: FstOptions, h: DefenseHooks = {}): FstReport {
  const t0 = performance.now();
  const valAccBefore = accuracyOn(model, data.val, data.norm);
  const [name, head] = findHead(model, o.head);
  const wOrig = noGrad(() => head.weight.detach().clone());
  const headNorm = scope(() => wOrig.norm().item());
  reinitHead(head, o.seed);
  const overlap = (): number => dot(head.weight, wOrig) / (headNorm * headNorm);
  const overlapInit = overlap();
  const overlapByEpoch: number[] = [];
  try {
    fineTune(model, data.train, data.norm, o, {
      ...h, stage: 'fst', resumable: true,
      epochState: { save: () => overlapByEpoch, load: (v) => { overlapByEpoch.push(...numbers(v, 'overlapByEpoch')); } },
      extraLoss: () => fstPenalty(head.weight, wOrig, o.alpha),
      afterStep: (s) => {
        rescaleTo(head.weight, headNorm);
        if (s.batch === s.batches - 1) overlapByEpoch.push(overlap());
      },
    });
  } finally {
    wOrig.dispose();
  }
  const last = overlapByEpoch[overlapByEpoch.length - 1];
  h.log?.(`fst: head '${name}', ||W|| ${headNorm.toFixed(4)}, <W, W_orig>/||W_orig||^2 ${overlapInit.toFixed(3)} -> ${last?.toFixed(3)}`);
  return {
    method: 'fst', options: o, head: name, headNorm, headNormAfter: scope(() => head.weight.norm().item()), overlapInit, overlapByEpoch,
    valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000,
  };
}

export const FST = defineDefense({
  name: 'fst', summary: 'FST: re-initialise the head, fine-tune with a penalty on its overlap with the backdoored head, head norm kept',
  schema: FST_SCHEMA, presets: { default: { ...FST_DEFAULTS } }, run: fst,
});
