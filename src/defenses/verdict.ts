// After a purification: does a backdoor likely remain? The defender has no trigger and no test set,
// so the verdict comes from the model and the clean images alone: the class search of
// trigger-search.ts on the purified model. A remaining backdoor shows as one class that far smaller
// masks reach than the others (a low-side anomaly in the log mask norms); the verdict names it.
// How often the verdict is right is measured on judges (docs/protocol.md section 10).
import { nn } from '../torch/compute';
import { DefenseData } from './common';
import { searchTriggers, TRIGGER_SEARCH_DEFAULTS, TriggerSearchOptions } from './trigger-search';

export interface VerdictOptions extends TriggerSearchOptions {
  /** the anomaly index (log mask norms, MAD) over which the smallest-mask class is called a backdoor's target */
  threshold: number;
}

export const VERDICT_DEFAULTS: VerdictOptions = { ...TRIGGER_SEARCH_DEFAULTS, threshold: 2 };

export interface Verdict {
  /** whether a backdoor likely remains */
  backdoorLikely: boolean;
  /** the class the smallest mask reaches, its mask (pixels) and anomaly index; the median mask over the classes */
  suspect: number;
  suspectMask: number;
  anomalyIndex: number;
  medianMask: number;
  /** per class: mask L1 and the share of other-class images the found trigger sends there */
  masks: number[];
  successes: number[];
  threshold: number;
  seconds: number;
}

/** The verdict on `model` (left unchanged) from the defender's clean images (training and held-out parts). */
export function residualVerdict(model: nn.Module, data: DefenseData, o: VerdictOptions = VERDICT_DEFAULTS, progress?: (n: number, total: number) => void): Verdict {
  const t0 = performance.now();
  const r = searchTriggers(model, data.train.images, data.train.labels, data.norm, data.train.classes, o, o.threshold, null, progress);
  const masks = r.triggers.map((t) => t.maskL1);
  const successes = r.triggers.map((t) => t.success);
  for (const t of r.triggers) { t.mask.dispose(); t.pattern.dispose(); }
  const sorted = [...masks].sort((a, b) => a - b);
  const s = r.triggers[r.suspect];
  return {
    backdoorLikely: r.flagged, suspect: r.suspect, suspectMask: s.maskL1, anomalyIndex: s.anomalyIndex,
    medianMask: (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2, masks, successes, threshold: o.threshold,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** One line for people: what the verdict says and why. */
export function verdictLine(v: Verdict): string {
  const why = `class ${v.suspect} is reached with a ${v.suspectMask.toFixed(1)}-pixel mask, the median class with ${v.medianMask.toFixed(1)} (anomaly index ${v.anomalyIndex.toFixed(2)}, threshold ${v.threshold})`;
  return v.backdoorLikely ? `a backdoor likely remains, towards class ${v.suspect}: ${why}` : `no backdoor found: ${why}`;
}
