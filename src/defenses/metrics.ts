// Per-channel neuron scores for selection: output variance (VarDefense), information entropy of binned
// outputs, mean activation (fine-pruning's), filter weight norm, and seeded random scores (the control
// that says what any selection of the same size does). Low score = candidate bad neuron.
import { arange, keep, noGrad, ones, scope, Tensor, zeros } from '../torch/compute';
import { Rng } from '../util/rng';
import { ChannelStats, channelReduceDims, StatsDtype, valuesPerChannel } from './channel-stats';

export type MetricName = 'variance' | 'entropy' | 'mean' | 'weight' | 'random';
export const METRIC_NAMES = ['variance', 'entropy', 'mean', 'weight', 'random'] as const satisfies readonly MetricName[];
/** metrics that read no data: no measurement pass, no running statistics */
export const DATA_FREE_METRICS: MetricName[] = ['weight', 'random'];

/** Accumulates one layer's output over minibatches and turns it into per-channel scores (one host read). */
export interface ChannelMetric { update(x: Tensor): void; scores(): Float64Array; dispose(): void }

/** Binned entropy per channel: bins span each channel's range in the first batch seen (extended by
 * its width on both sides; values outside go to the end bins). momentum null pools the counts of every
 * batch; a number m keeps a running histogram, p <- m * p + (1 - m) * the batch's, as ChannelStats.
 * The binning runs in `dtype` on the activations as laid out; pooled counts are kept in float64 so
 * that they stay exact integers past 2^24. */
export class EntropyMetric implements ChannelMetric {
  private counts: Tensor | null = null;
  /** each channel's minimum in the first batch: its bins start one span below it */
  private min: Tensor | null = null;
  private width: Tensor | null = null;
  /** channel c's first bin in the flattened [C * bins] histogram, shaped to broadcast over [N, C, *] */
  private offset: Tensor | null = null;
  private seen = 0;
  constructor(readonly bins = 32, readonly momentum: number | null = null, readonly dtype: StatsDtype = 'float64') {
    if (momentum !== null && !(momentum >= 0 && momentum < 1)) throw new Error(`momentum must be null or in [0, 1), got ${momentum}`);
  }

  update(x: Tensor): void {
    noGrad(() => scope(() => {
      const v = x.dtype === this.dtype ? x : x.to(this.dtype);
      const c = v.size(1), dims = channelReduceDims(v), n = valuesPerChannel(v);
      const bcast = [1, c, ...Array.from({ length: v.ndim - 2 }, () => 1)];
      if (!this.counts) {
        const mn = v.amin(dims).reshape(bcast), mx = v.amax(dims).reshape(bcast);
        const span = mx.sub(mn).clamp(1e-12);
        this.min = mn;
        this.width = span.mul(3 / this.bins);
        this.offset = arange(0, c * this.bins, this.bins, { dtype: 'int64', device: v.device }).reshape(bcast);
        this.counts = zeros([c * this.bins], { dtype: 'float64', device: v.device });
        for (const t of [this.min, this.width, this.offset, this.counts]) keep(t);
      }
      if (c * this.bins !== this.counts.numel) throw new Error(`channel count changed from ${this.counts.numel / this.bins} to ${c}`);
      // (v - (min - span)) / width, as (v - min) / width + span / width: min - span would round to min
      // in float32 when the span is tiny (a constant channel), and put the constant in the first bin
      const bin = v.sub(this.min!).div(this.width!).add(this.bins / 3).floor().clamp(0, this.bins - 1).long().add(this.offset!).reshape(-1);
      const batch = zeros([c * this.bins], { dtype: this.dtype, device: v.device }).scatterAdd(0, bin, ones([bin.numel], { dtype: this.dtype, device: v.device })).to('float64');
      if (this.momentum === null) this.counts.add_(batch);
      else if (this.seen === 0) this.counts.copy_(batch.div(n));
      else this.counts.mul_(this.momentum).add_(batch.div(n), 1 - this.momentum);
      this.seen++;
    }));
  }

  scores(): Float64Array {
    if (!this.counts) throw new Error('entropy: no batch seen yet');
    return noGrad(() => scope(() => {
      const counts = this.counts!.reshape(-1, this.bins);
      const p = counts.div(counts.sum(1, true));
      const plogp = p.mul(p.clamp(1e-300).log());
      return plogp.sum(1).neg().toArray() as Float64Array;
    }));
  }

  dispose(): void {
    for (const t of [this.min, this.width, this.offset, this.counts]) t?.dispose();
    this.min = this.width = this.offset = this.counts = null;
  }
}

export class VarianceMetric implements ChannelMetric {
  readonly stats: ChannelStats;
  constructor(momentum: number | null, dtype: StatsDtype = 'float64') { this.stats = new ChannelStats({ momentum, dtype, keepMean: false }); }
  update(x: Tensor): void { this.stats.update(x); }
  scores(): Float64Array { return this.stats.variances(); }
  dispose(): void { this.stats.dispose(); }
}

export class MeanMetric implements ChannelMetric {
  readonly stats: ChannelStats;
  constructor(momentum: number | null, dtype: StatsDtype = 'float64') { this.stats = new ChannelStats({ momentum, dtype }); }
  update(x: Tensor): void { this.stats.update(x); }
  scores(): Float64Array { return this.stats.means(); }
  dispose(): void { this.stats.dispose(); }
}

/** L1 norm of each output channel's weights (data-free): a conv filter, or a BN's gamma (|gamma|). */
export function weightScores(weight: Tensor): Float64Array {
  return noGrad(() => scope(() => weight.abs().reshape(weight.size(0), -1).sum(1).to('float64').toArray() as Float64Array));
}

/**
 * Seeded uniform scores in [0, 1) for each of `channels` channels of the layer at position `layer` of
 * the purified set: the same seed and layer give the same scores on every machine (a TypeScript
 * generator, not libtorch's, so the fine-tune's own random stream is untouched).
 */
export function randomScores(channels: number, seed: number, layer: number): Float64Array {
  const rng = new Rng((Math.imul(seed >>> 0, 0x2c1b3c6d) ^ Math.imul(layer + 1, 0x297a2d39) ^ 0x5eed) >>> 0);
  return Float64Array.from({ length: channels }, () => rng.next());
}

export function makeMetric(name: Exclude<MetricName, 'weight' | 'random'>, momentum: number | null, dtype: StatsDtype = 'float64'): ChannelMetric {
  switch (name) {
    case 'variance': return new VarianceMetric(momentum, dtype);
    case 'mean': return new MeanMetric(momentum, dtype);
    case 'entropy': return new EntropyMetric(32, momentum, dtype);
    default: throw new Error(`unknown metric '${name as string}' (known: ${METRIC_NAMES.join(', ')})`);
  }
}
