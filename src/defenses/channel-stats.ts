// Per-channel statistics of a layer's output over clean data, accumulated across minibatches: the
// measurement behind VarDefense (variance) and fine-pruning (mean activation).
import { noGrad, scope, Tensor } from '../torch/compute';

export interface ChannelStatsOptions {
  /**
   * null: exact pooled mean and variance over every value seen (equal to a two-pass computation).
   * A number m in [0, 1): running estimates, stat <- m * stat + (1 - m) * batch stat (the paper's
   * momentum trick, as BatchNorm's running statistics).
   */
  momentum: number | null;
}

/** Activations [N, C, *] as float64 rows [C, N * prod(*)], detached. */
export function perChannel(x: Tensor): Tensor {
  return x.detach().transpose(0, 1).reshape(x.size(1), -1).to('float64');
}

/** Accumulates per-channel mean and (population) variance of [N, C, ...] activations. */
export class ChannelStats {
  private count = 0;
  private mean: Float64Array | null = null;
  /** sum of squared deviations (exact mode) or the running variance (momentum mode) */
  private m2: Float64Array | null = null;

  constructor(readonly options: ChannelStatsOptions = { momentum: null }) {
    const m = options.momentum;
    if (m !== null && !(m >= 0 && m < 1)) throw new Error(`momentum must be null or in [0, 1), got ${m}`);
  }

  get batches(): number { return this.count; }

  /** Adds one minibatch of activations [N, C, *] (detached; nothing is kept on the graph). */
  update(x: Tensor): void {
    const [bm, bv, n] = noGrad(() => scope(() => {
      const flat = perChannel(x);
      return [flat.mean(1).toArray() as Float64Array, flat.var(1, false).toArray() as Float64Array, flat.size(1)] as const;
    }));
    const mom = this.options.momentum;
    if (!this.mean || !this.m2) {
      this.mean = Float64Array.from(bm);
      this.m2 = mom === null ? bv.map((v) => v * n) : Float64Array.from(bv);
      this.count = mom === null ? n : 1;
      return;
    }
    if (bm.length !== this.mean.length) throw new Error(`channel count changed from ${this.mean.length} to ${bm.length}`);
    if (mom === null) {
      // Chan et al.: combine two sets' means and sums of squared deviations exactly
      const na = this.count, nb = n, tot = na + nb;
      for (let c = 0; c < bm.length; c++) {
        const d = bm[c] - this.mean[c];
        this.mean[c] += (d * nb) / tot;
        this.m2[c] += bv[c] * nb + (d * d * na * nb) / tot;
      }
      this.count = tot;
    } else {
      for (let c = 0; c < bm.length; c++) {
        this.mean[c] = mom * this.mean[c] + (1 - mom) * bm[c];
        this.m2[c] = mom * this.m2[c] + (1 - mom) * bv[c];
      }
      this.count++;
    }
  }

  /** Per-channel mean of the activations. */
  means(): Float64Array {
    if (!this.mean) throw new Error('ChannelStats: no batch seen yet');
    return Float64Array.from(this.mean);
  }

  /** Per-channel population variance of the activations. */
  variances(): Float64Array {
    if (!this.m2) throw new Error('ChannelStats: no batch seen yet');
    return this.options.momentum === null ? this.m2.map((v) => v / this.count) : Float64Array.from(this.m2);
  }
}
