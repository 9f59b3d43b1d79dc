// Fine-Pruning (Liu et al. 2018): channels of the last layer that stay dormant on clean data are where
// the backdoor lives; prune the least active ones step by step while clean validation accuracy holds,
// then fine-tune. The pruning is baked into the weights (and kept there while fine-tuning), so it
// survives a saved state dict.
import { nn, noGrad, scope, Tensor } from '../torch/compute';
import { normalize } from '../train/loop';
import { ChannelStats } from './channel-stats';
import { z } from 'zod';
import { accuracyOn, DefenseData, DefenseHooks, fineTune, FINE_TUNE_DEFAULTS, fineTuneShape, publishedFineTuneShape, Slice, zeroChannels } from './common';
import { defineDefense } from './method';
import { lastUnits } from './selection';

export const FINE_PRUNING_SCHEMA = z.object({
  ...fineTuneShape, ...publishedFineTuneShape,
  /**
   * 'features': the input channels of the final linear layer; for the ResNets that is the last
   * block's output after the residual add and ReLU (globally pooled), the layer BackdoorBench hooks.
   * Pruning it is exactly zeroing the linear layer's weight columns. 'last-conv': the batch-norm
   * output of the last conv layer (the residual shortcut still carries past it in a ResNet).
   */
  layer: z.enum(['features', 'last-conv']),
  /** share of the channels pruned per step (BackdoorBench: 1%) */
  stepFraction: z.number().gt(0).max(1),
  /** stop before validation accuracy falls more than this below the unpruned model's */
  tolerance: z.number().min(0).max(1),
}).strict();
export type FinePruningOptions = z.infer<typeof FINE_PRUNING_SCHEMA>;

// tolerance 0.05: on a validation part of a few hundred images accuracy has a sampling noise of 2-3
// points, so a tighter bound stops on noise; a looser one trades clean accuracy the method means to keep.
export const FINE_PRUNING_DEFAULTS: FinePruningOptions = { ...FINE_TUNE_DEFAULTS, layer: 'features', stepFraction: 0.01, tolerance: 0.05 };

export interface FinePruningReport {
  method: 'fine-pruning';
  options: FinePruningOptions;
  /** the layer pruned, e.g. 'linear (input)' or 'layer4.1.bn2' */
  layer: string;
  channels: number;
  /** channels from least to most active on the clean training data */
  order: number[];
  meanActivation: number[];
  pruned: number[];
  pruneRatio: number;
  /** validation accuracy after each pruning step (before fine-tuning) */
  steps: { pruned: number; valAcc: number }[];
  valAccPruned: number;
  valAccBefore: number;
  valAccAfter: number;
  seconds: number;
}

export interface Target { name: string; measured: nn.Module; input: boolean; channels: number; slices: Slice[] }

function target(model: nn.Module, layer: FinePruningOptions['layer']): Target {
  if (layer === 'features') {
    const linears = model.namedModules().filter(([, m]) => m instanceof nn.Linear) as [string, nn.Linear][];
    if (!linears.length) throw new Error('fine-pruning: the model has no linear layer (use layer=last-conv)');
    const [name, lin] = linears[linears.length - 1];
    return { name: `${name} (input)`, measured: lin, input: true, channels: lin.inFeatures, slices: [{ t: lin.weight, dim: 1 }] };
  }
  const [u] = lastUnits(model, 1);
  const params = u.bn ? [u.bn.weight, u.bn.bias] : [u.conv.weight, u.conv.bias];
  const name = u.bn ? (model.namedModules().find(([, m]) => m === u.bn)![0]) : u.name;
  return { name, measured: u.bn ?? u.conv, input: false, channels: u.conv.outChannels, slices: params.filter((p): p is Tensor => !!p).map((t) => ({ t, dim: 0 })) };
}

/** Mean activation per channel of the target over the clean training data (eval mode). */
function meanActivation(model: nn.Module, data: DefenseData, t: Target, batchSize: number): Float64Array {
  const stats = new ChannelStats({ momentum: null });
  const hook = t.measured.registerForwardHook((_m, input, output) => { stats.update(t.input ? input : output); });
  model.eval();
  const n = data.train.labels.numel;
  noGrad(() => {
    for (let s = 0; s < n; s += batchSize) scope(() => { model.call(normalize(data.train.images.narrow(0, s, Math.min(batchSize, n - s)), data.norm)); });
  });
  hook.remove();
  return stats.means();
}

export interface PruneResult { target: Target; order: number[]; means: Float64Array; pruned: number[]; steps: { pruned: number; valAcc: number }[]; valAccBefore: number; valAccPruned: number }

/** The pruning stage: rank by mean activation, prune in steps while validation accuracy holds, bake it in. */
export function pruneDormant(model: nn.Module, data: DefenseData, o: FinePruningOptions, h: DefenseHooks = {}): PruneResult {
  const t = target(model, o.layer);
  const valAccBefore = accuracyOn(model, data.val, data.norm);
  const means = meanActivation(model, data, t, o.batchSize);
  const order = Array.from(means, (m, c) => [m, c] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, c]) => c);

  const original = t.slices.map((s) => s.t.detach().clone());
  const setPruned = (k: number): void => {
    noGrad(() => t.slices.forEach((s, i) => s.t.copy_(original[i])));
    zeroChannels(t.slices, order.slice(0, k));
  };
  const step = Math.max(1, Math.round(o.stepFraction * t.channels));
  const steps: { pruned: number; valAcc: number }[] = [];
  let accepted = 0;
  let valAccPruned = valAccBefore;
  for (let k = step; k < t.channels; k += step) {
    setPruned(k);
    const valAcc = accuracyOn(model, data.val, data.norm);
    steps.push({ pruned: k, valAcc });
    h.progress?.('prune', data.val.labels.numel, data.val.labels.numel * Math.ceil(t.channels / step));
    if (valAcc < valAccBefore - o.tolerance) break;
    accepted = k;
    valAccPruned = valAcc;
  }
  setPruned(accepted);
  for (const x of original) x.dispose();
  h.log?.(`fine-pruning: ${accepted}/${t.channels} channels of ${t.name} pruned, validation accuracy ${(100 * valAccPruned).toFixed(2)}%`);
  return { target: t, order, means, pruned: order.slice(0, accepted).sort((a, b) => a - b), steps, valAccBefore, valAccPruned };
}

export function finePruning(model: nn.Module, data: DefenseData, o: FinePruningOptions, h: DefenseHooks = {}): FinePruningReport {
  const t0 = performance.now();
  const { target: t, order, means, pruned, steps, valAccBefore, valAccPruned } = pruneDormant(model, data, o, h);
  // the forward pass must always see the pruned channels at zero: re-zero before every step and at the end
  fineTune(model, data.train, data.norm, o, { ...h, stage: 'fine-tune', resumable: true, beforeStep: () => zeroChannels(t.slices, pruned) });
  zeroChannels(t.slices, pruned);
  return {
    method: 'fine-pruning', options: o, layer: t.name, channels: t.channels, order, meanActivation: Array.from(means), pruned,
    pruneRatio: pruned.length / t.channels, steps, valAccPruned, valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm),
    seconds: (performance.now() - t0) / 1000,
  };
}

export const FINE_PRUNING = defineDefense({
  name: 'fine-pruning', summary: 'Fine-Pruning: prune the channels least active on clean data while accuracy holds, then fine-tune',
  // 'published': fine-tuning on randomly cropped batches, as BackdoorBench's fp.py (CIFAR-10: augment=crop-flip)
  schema: FINE_PRUNING_SCHEMA, presets: { default: { ...FINE_PRUNING_DEFAULTS }, published: { ...FINE_PRUNING_DEFAULTS, augment: 'crop' } }, run: finePruning,
});
