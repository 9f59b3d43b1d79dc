// Neural-network functions with PyTorch's names and defaults (torch.nn.functional).
import { op, Tensor } from './tensor';

const F = {
  conv2d: op('aten::conv2d'),
  batchNorm: op('aten::batch_norm'),
  linear: op('aten::linear'),
  maxPool2d: op('aten::max_pool2d'),
  avgPool2d: op('aten::avg_pool2d'),
  adaptiveAvgPool2d: op('aten::adaptive_avg_pool2d'),
  dropout: op('aten::dropout'),
  softmax: op('aten::softmax', 'int'),
  logSoftmax: op('aten::log_softmax', 'int'),
  crossEntropy: op('aten::cross_entropy_loss'),
  nllLoss: op('aten::nll_loss'),
  mseLoss: op('aten::mse_loss'),
  l1Loss: op('aten::l1_loss'),
  klDiv: op('aten::kl_div'),
  bce: op('aten::binary_cross_entropy'),
  pad: op('aten::constant_pad_nd'),
  normalize: op('aten::norm', 'ScalarOpt_dim'),
};

export type Reduction = 'none' | 'mean' | 'sum';
const REDUCTION: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };
type Pair = number | [number, number];

export interface Conv2dOptions { stride?: Pair; padding?: Pair; dilation?: Pair; groups?: number }

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  return F.conv2d(x, weight, bias, o.stride ?? 1, o.padding ?? 0, o.dilation ?? 1, o.groups ?? 1);
}

export interface BatchNormOptions { training?: boolean; momentum?: number; eps?: number }

/** Batch norm; in training mode the running statistics are updated in place, as in PyTorch. */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, weight: Tensor | null, bias: Tensor | null, o: BatchNormOptions = {}): Tensor {
  return F.batchNorm(x, weight, bias, runningMean, runningVar, o.training ?? false, o.momentum ?? 0.1, o.eps ?? 1e-5, true);
}

export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return F.linear(x, weight, bias);
}

export const relu = (x: Tensor): Tensor => x.relu();

export function maxPool2d(x: Tensor, kernel: Pair, stride?: Pair, padding: Pair = 0, ceilMode = false): Tensor {
  return F.maxPool2d(x, kernel, stride ?? kernel, padding, 1, ceilMode);
}

export function avgPool2d(x: Tensor, kernel: Pair, stride?: Pair, padding: Pair = 0, ceilMode = false): Tensor {
  return F.avgPool2d(x, kernel, stride ?? kernel, padding, ceilMode, true, null);
}

export function adaptiveAvgPool2d(x: Tensor, size: Pair): Tensor {
  return F.adaptiveAvgPool2d(x, size);
}

export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  return F.dropout(x, p, training);
}

export const softmax = (x: Tensor, dim: number): Tensor => F.softmax(x, dim, null);
export const logSoftmax = (x: Tensor, dim: number): Tensor => F.logSoftmax(x, dim, null);

export interface CrossEntropyOptions { reduction?: Reduction; weight?: Tensor | null; ignoreIndex?: number; labelSmoothing?: number }

/** Cross entropy over logits [N, C] and int64 class targets [N] (or class probabilities [N, C]). */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  return F.crossEntropy(logits, target, o.weight ?? null, REDUCTION[o.reduction ?? 'mean'], o.ignoreIndex ?? -100, o.labelSmoothing ?? 0);
}

export function nllLoss(logProbs: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return F.nllLoss(logProbs, target, null, REDUCTION[reduction], -100);
}

export const mseLoss = (a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor => F.mseLoss(a, b, REDUCTION[reduction]);
export const l1Loss = (a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor => F.l1Loss(a, b, REDUCTION[reduction]);

/** KL divergence with PyTorch's convention: input holds log-probabilities. */
export const klDiv = (logInput: Tensor, target: Tensor, reduction: Reduction = 'mean', logTarget = false): Tensor => F.klDiv(logInput, target, REDUCTION[reduction], logTarget);

export const binaryCrossEntropy = (p: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor => F.bce(p, target, null, REDUCTION[reduction]);

/** Constant padding; pad lists (left, right, top, bottom, ...) for the last dims, as F.pad. */
export const pad = (x: Tensor, padding: number[], value = 0): Tensor => F.pad(x, padding, value);

/** x / max(||x||_p over dim, eps), as F.normalize. */
export function normalize(x: Tensor, p = 2, dim = 1, eps = 1e-12): Tensor {
  const n = F.normalize(x, p, [dim], true) as Tensor;
  const d = n.clamp(eps);
  const r = x.div(d);
  n.dispose();
  d.dispose();
  return r;
}

// ---- activations, layer norm and stochastic depth of the torchvision models (torch.nn.functional, torchvision.ops) ----
const A = {
  gelu: op('aten::gelu'),
  silu: op('aten::silu'),
  hardswish: op('aten::hardswish'),
  hardsigmoid: op('aten::hardsigmoid'),
  hardtanh: op('aten::hardtanh'),
  layerNorm: op('aten::layer_norm'),
  zeros: op('aten::zeros'),
  bernoulli: op('aten::bernoulli', 'p'),
};

/** GELU; approximate 'tanh' is the tanh approximation, 'none' the exact erf form (PyTorch's default). */
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => A.gelu(x, { approximate });
export const silu = (x: Tensor): Tensor => A.silu(x);
export const hardswish = (x: Tensor): Tensor => A.hardswish(x);
export const hardsigmoid = (x: Tensor): Tensor => A.hardsigmoid(x);
/** min(max(x, 0), 6), as F.relu6 (hardtanh(x, 0, 6)). */
export const relu6 = (x: Tensor): Tensor => A.hardtanh(x, 0, 6);

/** Normalises over the last dims given by normalizedShape, as F.layer_norm. */
export function layerNorm(x: Tensor, normalizedShape: number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return A.layerNorm(x, normalizedShape, weight, bias, eps, true);
}

/**
 * torchvision.ops.stochastic_depth: in training, zeroes whole samples ('row') or the whole batch
 * ('batch') with probability p and scales the survivors by 1/(1-p); the identity in eval or at p = 0.
 * The draws come from the engine's generator (manualSeed), not PyTorch's: runs repeat with a seed but
 * do not reproduce PyTorch's masks.
 */
export function stochasticDepth(x: Tensor, p: number, mode: 'row' | 'batch', training = true): Tensor {
  if (p < 0 || p > 1) throw new Error(`stochastic depth: drop probability has to be between 0 and 1, got ${p}`);
  if (!training || p === 0) return x;
  const survival = 1 - p;
  const size = mode === 'row' ? [x.size(0), ...new Array(x.ndim - 1).fill(1)] : new Array(x.ndim).fill(1);
  const z = A.zeros(size, { dtype: x.dtype });
  const noise = A.bernoulli(z, survival) as Tensor;
  z.dispose();
  if (survival > 0) noise.div_(survival);
  const out = x.mul(noise);
  noise.dispose();
  return out;
}

const upsampleBilinear2d = op('aten::upsample_bilinear2d', 'vec');

/** F.interpolate(x, size, mode='bilinear', align_corners) on NCHW (torchvision's Resize of tensors: no antialias). */
export function interpolateBilinear(x: Tensor, size: [number, number], alignCorners = false): Tensor {
  return upsampleBilinear2d(x, size, alignCorners, null);
}
