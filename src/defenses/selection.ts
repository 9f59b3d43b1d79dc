// Which neurons a pruning-style defense works on: conv layers (with the batch norm that follows each)
// in module order, per-channel scores, and the channels under a rising threshold.
import { nn } from '../torch/compute';

export interface ConvUnit {
  /** dotted name of the convolution, e.g. 'layer4.1.conv2' */
  name: string;
  conv: nn.Conv2d;
  /** the batch norm applied to this convolution's output, when the model has one right after it */
  bn: nn.BatchNorm2d | null;
  /** position among all conv layers of the model, 0 = first */
  index: number;
}

/** The BN that normalises conv `name`: sibling bnK for convK, item i+1 of a Sequential for item i, else the next sibling BN before another conv. */
function bnFor(model: nn.Module, name: string, conv: nn.Conv2d): nn.BatchNorm2d | null {
  const parts = name.split('.');
  const last = parts.pop()!;
  const parent = parts.join('.');
  const candidates: string[] = [];
  const m = /^conv(\d*)$/.exec(last);
  if (m) candidates.push(`bn${m[1]}`);
  if (/^\d+$/.test(last)) candidates.push(String(Number(last) + 1));
  for (const c of candidates) {
    try {
      const bn = model.getModule(parent ? `${parent}.${c}` : c);
      if (bn instanceof nn.BatchNorm2d && bn.numFeatures === conv.outChannels) return bn;
    } catch {
      /* no such sibling */
    }
  }
  // other namings (DenseNet's conv0/norm0, conv1 ... norm2): the next batch norm among the siblings
  // registered after the conv and before the next conv, of the conv's width
  const siblings = model.getModule(parent).namedChildren().map(([, m]) => m);
  for (const m of siblings.slice(siblings.indexOf(conv) + 1)) {
    if (m instanceof nn.Conv2d) break;
    if (m instanceof nn.BatchNorm2d) return m.numFeatures === conv.outChannels ? m : null;
  }
  return null;
}

/** Every conv layer of the model in module order, paired with its batch norm. */
export function convUnits(model: nn.Module): ConvUnit[] {
  const convs = model.namedModules().filter(([, m]) => m instanceof nn.Conv2d) as [string, nn.Conv2d][];
  return convs.map(([name, conv], index) => ({ name, conv, bn: bnFor(model, name, conv), index }));
}

/** The last `count` conv layers (the paper's layer index L). */
export function lastUnits(model: nn.Module, count: number): ConvUnit[] {
  const all = convUnits(model);
  if (!Number.isInteger(count) || count < 1 || count > all.length) throw new Error(`layer count must be in 1..${all.length}, got ${count}`);
  return all.slice(all.length - count);
}

/**
 * The last `count` conv layers, or all of them when the model has fewer (a VGG-11 has 8 convs, the
 * engineered presets reach 10): `clamped` says so.
 */
export function laterUnits(model: nn.Module, count: number): { units: ConvUnit[]; clamped: boolean } {
  const all = convUnits(model);
  if (!Number.isInteger(count) || count < 1) throw new Error(`layer count must be a positive integer, got ${count}`);
  if (all.length === 0) throw new Error('the model has no conv layer');
  return { units: all.slice(Math.max(0, all.length - count)), clamped: count > all.length };
}

/** Indices of the `fraction` of channels with the lowest scores (ties broken by index). */
export function lowestChannels(scores: ArrayLike<number>, fraction: number): number[] {
  if (!(fraction >= 0 && fraction <= 1)) throw new Error(`fraction must be in [0, 1], got ${fraction}`);
  const k = Math.round(fraction * scores.length);
  return Array.from(scores, (s, i) => [s, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, k).map(([, i]) => i).sort((a, b) => a - b);
}

/**
 * Selection under one threshold over all layers (network-wise): the `fraction` of all channels with
 * the lowest scores, returned per layer.
 */
export function lowestChannelsNetworkWise(scores: ArrayLike<number>[], fraction: number): number[][] {
  const flat = scores.flatMap((s, layer) => Array.from(s, (v, c) => ({ v, layer, c })));
  const k = Math.round(fraction * flat.length);
  const chosen = flat.sort((a, b) => a.v - b.v || a.layer - b.layer || a.c - b.c).slice(0, k);
  return scores.map((_, layer) => chosen.filter((x) => x.layer === layer).map((x) => x.c).sort((a, b) => a - b));
}

/** The dynamic incremental threshold: the share of channels under it at step t of `steps`. */
export function thresholdAt(step: number, steps: number, start: number, max: number): number {
  if (steps <= 1) return max;
  return start + ((max - start) * Math.min(step, steps - 1)) / (steps - 1);
}
