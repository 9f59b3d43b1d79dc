// Axis ticks at nice steps (1, 2, 2.5 or 5 x 10^k) with just enough decimals for distinct labels:
// Vega's own ticks under a fixed '.0%' format printed "88% 89% 89% 90% 90%" on a narrow ACC range.

export interface Ticks { values: number[]; step: number; decimals: number; domain: [number, number] }

const MANTISSAS = [1, 2, 2.5, 5, 10];

/** The smallest nice step giving at most `maxTicks` ticks over [lo, hi]. */
export function niceStep(lo: number, hi: number, maxTicks = 6): number {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) throw new Error(`niceStep: bounds must be finite, got ${lo}, ${hi}`);
  if (maxTicks < 2) throw new Error(`niceStep: maxTicks must be at least 2, got ${maxTicks}`);
  const range = hi - lo > 0 ? hi - lo : Math.abs(hi) || 1;
  const raw = range / (maxTicks - 1);
  const k = Math.floor(Math.log10(raw));
  for (const m of MANTISSAS) {
    const step = m * 10 ** k;
    if (step >= raw * (1 - 1e-9)) return step;
  }
  return 10 ** (k + 1);
}

/** Decimals that write every multiple of `step` exactly: 0.25 -> 2, 2.5 -> 1, 0.5 -> 1, 20 -> 0. */
export function stepDecimals(step: number): number {
  for (let d = 0; d <= 12; d++) if (Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) < 1e-6) return d;
  return 12;
}

/** Ticks at multiples of a nice step covering [lo, hi]; the domain is widened to the outer ticks. */
export function niceTicks(lo: number, hi: number, maxTicks = 6): Ticks {
  if (lo > hi) [lo, hi] = [hi, lo];
  const step = niceStep(lo, hi, maxTicks);
  const first = Math.floor(lo / step + 1e-9), last = Math.ceil(hi / step - 1e-9);
  const decimals = stepDecimals(step);
  const values = Array.from({ length: last - first + 1 }, (_, i) => Number(((first + i) * step).toFixed(decimals + 2)));
  return { values, step, decimals, domain: [values[0], values[values.length - 1]] };
}

/** The ticks' labels in fixed point with the step's decimals. */
export const tickLabels = (t: Ticks): string[] => t.values.map((v) => v.toFixed(t.decimals));

/** A Vega-Lite percent axis over fractions in [lo, hi]: nice percent steps, labels with the decimals they need. */
export function percentScale(lo: number, hi: number, maxTicks = 6): { axis: { values: number[]; format: string }; scale: { domain: [number, number]; zero: false; nice: false } } {
  const t = niceTicks(100 * lo, 100 * hi, maxTicks);
  const values = t.values.map((v) => Number((v / 100).toFixed(t.decimals + 4)));
  return { axis: { values, format: `.${t.decimals}%` }, scale: { domain: [values[0], values[values.length - 1]], zero: false, nice: false } };
}
