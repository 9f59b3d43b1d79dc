// CLP, Channel Lipschitzness-based Pruning (Zheng et al. 2022), data-free: a channel whose conv+BN map
// has an outlying upper bound on its Lipschitz constant is sensitive to a small trigger; zero it.
// The method reads only the weights; data.val is used for the reported accuracies alone.
import { z } from 'zod';
import { nn, noGrad, op, scope } from '../torch/compute';
import { defineDefense } from './method';
import { accuracyOn, DefenseData, DefenseHooks, zeroChannels } from './common';
import { convUnits } from './selection';

export const CLP_SCHEMA = z.object({
  /** a channel is pruned when its score exceeds mean + u * std of its layer's scores */
  u: z.number().min(0),
}).strict();
export type ClpOptions = z.infer<typeof CLP_SCHEMA>;

export const CLP_DEFAULTS: ClpOptions = { u: 3 };

export interface ClpReport {
  method: 'clp';
  options: ClpOptions;
  /** per BN-paired conv layer: the BN's name, its channel count and the channels zeroed */
  perLayer: { name: string; channels: number; pruned: number[] }[];
  totalPruned: number;
  valAccBefore: number;
  valAccAfter: number;
  seconds: number;
}

const svdvals = op('aten::linalg_svdvals');

/**
 * Per-channel upper bound of the Lipschitz constant of conv+BN: the largest singular value of the
 * channel's filter (reshaped [in, kh * kw]) times |gamma / sqrt(running_var + eps)|.
 */
export function clpScores(conv: nn.Conv2d, bn: nn.BatchNorm2d): Float64Array {
  return noGrad(() => scope(() => {
    const scale = bn.weight.div(bn.runningVar.add(bn.eps).sqrt()).abs().double();
    const w = conv.weight.detach().double().flatten(2).mul(scale.view(-1, 1, 1));
    return svdvals(w).amax(1).toArray() as Float64Array;
  }));
}

/** Channels whose score exceeds mean + u * std (unbiased std, as torch.std) of the layer's scores. */
export function outliers(scores: ArrayLike<number>, u: number): number[] {
  const n = scores.length;
  if (n < 2) return [];
  const mean = Array.from(scores).reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(Array.from(scores).reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  return Array.from(scores, (s, c) => (s > mean + u * std ? c : -1)).filter((c) => c >= 0);
}

export function clp(model: nn.Module, data: DefenseData, o: ClpOptions, h: DefenseHooks = {}): ClpReport {
  if (!convUnits(model).some((u) => u.bn))
    throw new Error('clp: the model has no convolution followed by a batch norm, whose channel Lipschitz bound CLP prunes by (ConvNeXt and ViT normalise with LayerNorm)');
  const t0 = performance.now();
  const valAccBefore = accuracyOn(model, data.val, data.norm);
  const names = new Map(model.namedModules().map(([n, m]) => [m, n]));
  const perLayer: ClpReport['perLayer'] = [];
  for (const u of convUnits(model)) {
    if (!u.bn) continue;
    const bn = u.bn;
    const pruned = outliers(clpScores(u.conv, bn), o.u);
    perLayer.push({ name: names.get(bn)!, channels: bn.numFeatures, pruned });
    if (!pruned.length) continue;
    // zero BN weight and bias: the channel's output is exactly 0 and stays so in a saved state dict
    zeroChannels([{ t: bn.weight, dim: 0 }, { t: bn.bias, dim: 0 }], pruned);
  }
  const totalPruned = perLayer.reduce((a, l) => a + l.pruned.length, 0);
  h.log?.(`clp: ${totalPruned} channels zeroed in ${perLayer.filter((l) => l.pruned.length).length} layers`);
  return { method: 'clp', options: o, perLayer, totalPruned, valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000 };
}

export const CLP = defineDefense({
  name: 'clp', summary: 'CLP (data-free): zero the channels with outlying conv+BN Lipschitz bounds',
  schema: CLP_SCHEMA, presets: { default: { ...CLP_DEFAULTS } }, run: clp,
});
