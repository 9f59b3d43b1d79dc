// After a purification: does a backdoor likely remain? The defender has no trigger and no test set,
// so the verdict comes from the models and the clean images alone: the class search of
// trigger-search.ts, on the original model and on the purified one. A backdoor shows as one class
// that far smaller masks reach than the others (a low-side anomaly of the log mask norms). The rule:
// a backdoor likely remains when the purified model has such a class and it is the class the original
// model had (or the original had none: the search may miss a target there, so any anomaly after
// counts). A class flagged only after is not the original's backdoor: a class that a poor purified
// model happens to reach easily. How often the verdict is right is measured on judges
// (docs/protocol.md section 10). Reads only the models and the defender's images.
import { nn } from '../torch/compute';
import { DefenseData } from './common';
import { searchTriggers, TRIGGER_SEARCH_DEFAULTS, TriggerSearchOptions } from './trigger-search';

export interface VerdictOptions extends TriggerSearchOptions {
  /** the anomaly index (log mask norms, MAD) over which the smallest-mask class is called a backdoor's target */
  threshold: number;
}

export const VERDICT_DEFAULTS: VerdictOptions = { ...TRIGGER_SEARCH_DEFAULTS, threshold: 2 };

/** One model's search, as numbers. */
export interface ClassSearch {
  /** the class the smallest mask reaches, its mask (pixels) and anomaly index, whether that passes the threshold */
  suspect: number;
  suspectMask: number;
  anomalyIndex: number;
  flagged: boolean;
  medianMask: number;
  /** per class: mask L1 and the share of other-class images the found trigger sends there */
  masks: number[];
  successes: number[];
  seconds: number;
}

export interface Verdict {
  /** whether a backdoor likely remains */
  backdoorLikely: boolean;
  /** the purified model's search and the original's */
  after: ClassSearch;
  before: ClassSearch;
  threshold: number;
  /** the search's steps, when not the default's */
  steps?: number;
}

/** The search on `model` (left unchanged) from the defender's clean training images. */
export function classSearch(model: nn.Module, data: DefenseData, o: VerdictOptions = VERDICT_DEFAULTS, progress?: (n: number, total: number) => void): ClassSearch {
  const t0 = performance.now();
  const r = searchTriggers(model, data.train.images, data.train.labels, data.norm, data.train.classes, o, o.threshold, null, progress);
  const masks = r.triggers.map((t) => t.maskL1);
  const successes = r.triggers.map((t) => t.success);
  for (const t of r.triggers) { t.mask.dispose(); t.pattern.dispose(); }
  const sorted = [...masks].sort((a, b) => a - b);
  const s = r.triggers[r.suspect];
  return {
    suspect: r.suspect, suspectMask: s.maskL1, anomalyIndex: s.anomalyIndex, flagged: r.flagged,
    medianMask: (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2, masks, successes, seconds: (performance.now() - t0) / 1000,
  };
}

/** The verdict from the original model's search and the purified model's. */
export function verdictOf(before: ClassSearch, after: ClassSearch, threshold = VERDICT_DEFAULTS.threshold): Verdict {
  return { backdoorLikely: after.flagged && (!before.flagged || after.suspect === before.suspect), after, before, threshold };
}

const described = (s: ClassSearch): string => `class ${s.suspect} is reached with a ${s.suspectMask.toFixed(1)}-pixel mask, the median class with ${s.medianMask.toFixed(1)} (anomaly index ${s.anomalyIndex.toFixed(2)})`;

/** One line for people: what the verdict says and why. */
export function verdictLine(v: Verdict): string {
  const why = `after: ${described(v.after)}; before: ${described(v.before)}; threshold ${v.threshold}`;
  if (v.backdoorLikely) return `a backdoor likely remains, towards class ${v.after.suspect}: ${why}`;
  if (v.after.flagged) return `no backdoor of the original's found (class ${v.after.suspect} stands out after, not the original's class ${v.before.suspect}): ${why}`;
  return `no backdoor found: ${why}`;
}
