// Per-channel statistics of a layer's output over clean data, accumulated across minibatches: the
// measurement behind VarDefense (variance) and fine-pruning (mean activation). The running state stays
// in tensors beside the activations; the host reads it only when the statistics are asked for.
import { keep, noGrad, scope, Tensor } from '../torch/compute';

export type StatsDtype = 'float32' | 'float64';

export interface ChannelStatsOptions {
  /**
   * null: exact pooled mean and variance over every value seen (equal to a two-pass computation).
   * A number m in [0, 1): running estimates, stat <- m * stat + (1 - m) * batch stat (the paper's
   * momentum trick, as BatchNorm's running statistics).
   */
  momentum: number | null;
  /** precision of the per-batch reductions and of the running state (default float64) */
  dtype?: StatsDtype;
  /**
   * false: with a momentum, only the running variance is kept (its update does not read the mean), and
   * each batch's variance is taken in two passes (batchVariance), several times faster than the
   * one-pass kernel on narrow layers; means() then refuses. The exact mode always keeps the mean.
   */
  keepMean?: boolean;
}

/** The dimensions of [N, C, *] activations that a per-channel statistic reduces over. */
export const channelReduceDims = (x: Tensor): number[] => [0, ...Array.from({ length: x.ndim - 2 }, (_, i) => i + 2)];

/**
 * Per-channel population variance of [N, C, *] activations in two passes, mean((x - mean)^2): the
 * one-pass (Welford) kernel of Tensor.var was 2-9x slower on VarDefense's activations (channels-last,
 * a few pixels per channel). Within ~5e-7 relative of it in float32 (the rounding differs).
 */
export function batchVariance(x: Tensor, dims: number[]): Tensor {
  return scope(() => x.sub(x.mean(dims, true)).square().mean(dims));
}

/** Values per channel in one batch of [N, C, *] activations. */
export const valuesPerChannel = (x: Tensor): number => x.numel / x.size(1);

/** Accumulates per-channel mean and (population) variance of [N, C, ...] activations. */
export class ChannelStats {
  private count = 0;
  private channels = 0;
  private mean: Tensor | null = null;
  /** sum of squared deviations (exact mode) or the running variance (momentum mode) */
  private m2: Tensor | null = null;

  constructor(readonly options: ChannelStatsOptions = { momentum: null }) {
    const m = options.momentum;
    if (m !== null && !(m >= 0 && m < 1)) throw new Error(`momentum must be null or in [0, 1), got ${m}`);
  }

  get batches(): number { return this.count; }

  /** Adds one minibatch of activations [N, C, *] (nothing is kept on the graph, nothing read back). */
  update(x: Tensor): void {
    const mom = this.options.momentum;
    if (this.m2 && x.size(1) !== this.channels) throw new Error(`channel count changed from ${this.channels} to ${x.size(1)}`);
    noGrad(() => scope(() => {
      const v = x.dtype === (this.options.dtype ?? 'float64') ? x : x.to(this.options.dtype ?? 'float64');
      const dims = channelReduceDims(v);
      if (mom !== null && this.options.keepMean === false) {
        // the per-step cost of VarDefense's hooks on ten layers
        const bv = batchVariance(v, dims);
        if (!this.m2) { this.channels = x.size(1); this.m2 = keep(bv); this.count = 1; } else { this.m2.mul_(mom).add_(bv, 1 - mom); this.count++; }
        return;
      }
      const bm = v.mean(dims), bv = v.var(dims, false);
      const n = valuesPerChannel(v);
      if (!this.mean || !this.m2) {
        this.channels = x.size(1);
        this.mean = keep(bm);
        this.m2 = keep(mom === null ? bv.mul(n) : bv);
        this.count = mom === null ? n : 1;
        return;
      }
      if (mom === null) {
        // Chan et al.: combine two sets' means and sums of squared deviations exactly
        const na = this.count, nb = n, tot = na + nb;
        const d = bm.sub(this.mean);
        this.mean.add_(d, nb / tot);
        this.m2.add_(bv, nb).add_(d.square(), (na * nb) / tot);
        this.count = tot;
      } else {
        this.mean.mul_(mom).add_(bm, 1 - mom);
        this.m2.mul_(mom).add_(bv, 1 - mom);
        this.count++;
      }
    }));
  }

  /** Per-channel mean of the activations (one read from the tensors). */
  means(): Float64Array {
    if (this.options.keepMean === false && this.options.momentum !== null) throw new Error('ChannelStats: the mean is not kept (keepMean false)');
    if (!this.mean) throw new Error('ChannelStats: no batch seen yet');
    return Float64Array.from(this.mean.toArray() as Float32Array | Float64Array);
  }

  /** Per-channel population variance of the activations (one read from the tensors). */
  variances(): Float64Array {
    if (!this.m2) throw new Error('ChannelStats: no batch seen yet');
    const m2 = Float64Array.from(this.m2.toArray() as Float32Array | Float64Array);
    return this.options.momentum === null ? m2.map((v) => v / this.count) : m2;
  }

  /** Frees the running state. */
  dispose(): void {
    this.mean?.dispose();
    this.m2?.dispose();
    this.mean = this.m2 = null;
  }
}
