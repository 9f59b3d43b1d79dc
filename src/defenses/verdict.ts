// After a purification: does a backdoor likely remain? The defender has no trigger and no test set,
// so the verdict comes from the models and the clean images alone: the class search of
// trigger-search.ts, on the original model and on the purified one. A backdoor shows as one class
// that far smaller masks reach than the others (a low-side anomaly of the log mask norms). The rule:
// a backdoor likely remains when the purified model has such a class and it is the class the original
// model had (or the original had none: the search may miss a target there, so any anomaly after
// counts). A class flagged only after is not the original's backdoor: a class that a poor purified
// model happens to reach easily. The mask search reaches a dark patch over the object only in part
// (docs/protocol.md section 12), so the same rule runs on a second search, the square scan of
// square-scan.ts: there a class stands out by the share of other images its best solid square sends to
// it (the high-side anomaly index); a backdoor likely remains when either search says so. Where one
// search flagged no class on the original, the original's target is the class the other flagged. How often the
// verdict is right is measured on judges (docs/protocol.md sections 10 and 12). Reads only the models
// and the defender's images.
import { nn } from '../torch/compute';
import { DefenseData } from './common';
import { scanSquares, SQUARE_SCAN_DEFAULTS } from './square-scan';
import { SearchResult, searchTriggers, TRIGGER_SEARCH_DEFAULTS, TriggerSearchOptions } from './trigger-search';

export interface VerdictOptions extends TriggerSearchOptions {
  /** the anomaly index (log mask norms, MAD) over which the smallest-mask class is called a backdoor's target */
  threshold: number;
  /** the square scan too (its anomaly index over the classes' successes, the same threshold) */
  scan: boolean;
  /** the share of the other classes' images the purified model's best square must still send to the class for the scan to count it */
  scanFloor: number;
}

export const VERDICT_DEFAULTS: VerdictOptions = { ...TRIGGER_SEARCH_DEFAULTS, threshold: 2, scan: true, scanFloor: 0.25 };

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

/** The square scan's side of a verdict: its searches, its floor, and whether it says a backdoor likely remains. */
export interface ScanVerdict { backdoorLikely: boolean; after: ClassSearch; before: ClassSearch; floor: number }

export interface Verdict {
  /** whether a backdoor likely remains (by the mask search or the square scan) */
  backdoorLikely: boolean;
  /** the purified model's search and the original's */
  after: ClassSearch;
  before: ClassSearch;
  threshold: number;
  /** the square scan's searches (absent with scan: false, and in older reports); masks are its squares' areas */
  scan?: ScanVerdict;
  /** the search's steps, when not the default's */
  steps?: number;
}

/** The original model's searches, kept for every method of a request. */
export interface VerdictReference { masks: ClassSearch; squares?: ClassSearch }

/** The search on `model` (left unchanged) from the defender's clean training images. */
export function classSearch(model: nn.Module, data: DefenseData, o: VerdictOptions = VERDICT_DEFAULTS, progress?: (n: number, total: number) => void): ClassSearch {
  const t0 = performance.now();
  return summarized(searchTriggers(model, data.train.images, data.train.labels, data.norm, data.train.classes, o, o.threshold, null, progress), t0);
}

/** The square scan on `model` (left unchanged) from the defender's clean training images, as a ClassSearch. */
export function squareSearch(model: nn.Module, data: DefenseData, o: VerdictOptions = VERDICT_DEFAULTS, progress?: (n: number, total: number) => void): ClassSearch {
  const t0 = performance.now();
  return summarized(scanSquares(model, data.train.images, data.train.labels, data.norm, data.train.classes, { ...SQUARE_SCAN_DEFAULTS, seed: o.seed }, o.threshold, progress), t0);
}

function summarized(r: SearchResult, t0: number): ClassSearch {
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

/**
 * The rule on one search: the purified model has an outlying class, and it is the original's backdoor
 * target: the class this search flagged on the original, or where it flagged none, the class the other
 * search flagged there; where neither flagged one, any outlying class after counts.
 */
function remains(before: ClassSearch, after: ClassSearch, otherBefore?: ClassSearch): boolean {
  if (!after.flagged) return false;
  const target = targetOf(before, otherBefore);
  return target === null || after.suspect === target;
}

/** The original's target for one search: the class it flagged, else the class the other search flagged, else null. */
const targetOf = (before: ClassSearch, otherBefore?: ClassSearch): number | null => (before.flagged ? before.suspect : otherBefore?.flagged ? otherBefore.suspect : null);

/**
 * The verdict from the original model's search and the purified model's (and the scan's, when given: it
 * counts a class only while its square still sends `floor` of the other images there: a purified model's
 * best square reaches about its residual ASR, and up to a fifth on development models left with 2-3%).
 */
export function verdictOf(before: ClassSearch, after: ClassSearch, threshold = VERDICT_DEFAULTS.threshold,
  scan?: { before: ClassSearch; after: ClassSearch; floor?: number }): Verdict {
  const floor = scan?.floor ?? VERDICT_DEFAULTS.scanFloor;
  const bySquares = scan ? { backdoorLikely: remains(scan.before, scan.after, before) && scan.after.successes[scan.after.suspect] >= floor, before: scan.before, after: scan.after, floor } : undefined;
  return { backdoorLikely: remains(before, after, scan?.before) || (bySquares?.backdoorLikely ?? false), after, before, threshold, ...(bySquares ? { scan: bySquares } : {}) };
}

const described = (s: ClassSearch): string => `class ${s.suspect} is reached with a ${s.suspectMask.toFixed(1)}-pixel mask, the median class with ${s.medianMask.toFixed(1)} (anomaly index ${s.anomalyIndex.toFixed(2)})`;
const scanned = (s: ClassSearch): string => `class ${s.suspect} gets ${(100 * s.successes[s.suspect]).toFixed(0)}% of the other images by a ${Math.sqrt(s.suspectMask).toFixed(0)}-pixel square (anomaly index ${s.anomalyIndex.toFixed(2)})`;

/** The search that says a backdoor likely remains (the mask search first), or null. */
export function flaggedBy(v: Verdict): ClassSearch | null {
  return remains(v.before, v.after, v.scan?.before) ? v.after : v.scan?.backdoorLikely ? v.scan.after : null;
}

/** One line for people: what the verdict says and why. */
export function verdictLine(v: Verdict): string {
  const squares = v.scan ? `; square scan after: ${scanned(v.scan.after)}, before: ${scanned(v.scan.before)}` : '';
  const why = `after: ${described(v.after)}; before: ${described(v.before)}${squares}; threshold ${v.threshold}`;
  const by = flaggedBy(v);
  if (by) return `a backdoor likely remains, towards class ${by.suspect} (${by === v.after ? 'mask search' : 'square scan'}): ${why}`;
  // a class stands out after, by a search whose rule says it is not the original's target (or, for the
  // scan, it is, but its square sends fewer images there than the floor)
  const [other, target] = v.after.flagged ? [v.after, targetOf(v.before, v.scan?.before)] : v.scan?.after.flagged ? [v.scan.after, targetOf(v.scan.before, v.before)] : [null, null];
  if (other && other.suspect === target) return `no backdoor found (the original's class ${target} answers a square for ${(100 * other.successes[other.suspect]).toFixed(0)}% of the other images, under the floor of ${(100 * v.scan!.floor).toFixed(0)}%): ${why}`;
  if (other) return `no backdoor of the original's found (class ${other.suspect} stands out after, not the original's class ${target}): ${why}`;
  return `no backdoor found: ${why}`;
}
