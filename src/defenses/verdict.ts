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
// it (the high-side anomaly index); a backdoor likely remains when either search says so. The scan names
// a target on the original only where one square sends most images to it (a patch backdoor's sends
// nearly all), counts it on the purified model while a square still sends a quarter, and says nothing
// where no target is known; where one search flagged no class on the original, the original's target is
// the class the other named. How often the verdict is right is measured on judges (docs/protocol.md
// sections 10 and 12). Reads only the models and the defender's images.
import { nn } from '../torch/compute';
import { DefenseData } from './common';
import { scanSquares, SQUARE_SCAN_DEFAULTS } from './square-scan';
import { disposeTriggers, SearchResult, searchTriggers, TRIGGER_SEARCH_DEFAULTS, TriggerSearchOptions } from './trigger-search';

export interface VerdictOptions extends TriggerSearchOptions {
  /** the anomaly index (log mask norms, MAD) over which the smallest-mask class is called a backdoor's target */
  threshold: number;
  /** the square scan too (its anomaly index over the classes' successes, the same threshold) */
  scan: boolean;
  /** the share of the other classes' images the purified model's best square must still send to the class for the scan to count it */
  scanFloor: number;
  /** the share the original's best square must send to its class for the scan to name it the backdoor's target */
  scanTarget: number;
}

export const VERDICT_DEFAULTS: VerdictOptions = { ...TRIGGER_SEARCH_DEFAULTS, threshold: 2, scan: true, scanFloor: 0.25, scanTarget: 0.5 };

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

/** The square scan's side of a verdict: its searches, its shares (floor, target), and whether it says a backdoor likely remains. */
export interface ScanVerdict { backdoorLikely: boolean; after: ClassSearch; before: ClassSearch; floor: number; target: number }

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
  disposeTriggers(r.triggers);
  const sorted = [...masks].sort((a, b) => a - b);
  const s = r.triggers[r.suspect];
  return {
    suspect: r.suspect, suspectMask: s.maskL1, anomalyIndex: s.anomalyIndex, flagged: r.flagged,
    medianMask: (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2, masks, successes, seconds: (performance.now() - t0) / 1000,
  };
}

/** The class a scan names: its flagged class, while that class's square sends at least `share` of the other images there. */
const named = (s: ClassSearch, share: number): number | null => (s.flagged && s.successes[s.suspect] >= share ? s.suspect : null);

/**
 * The original's backdoor target for each search: the class it flagged on the original (for the scan, a
 * class whose square sends at least `scanTarget` of the images there: a patch backdoor's sends nearly all,
 * a clean class such as Fashion-MNIST's bags about a third), else the class the other search flagged there.
 */
function targets(before: ClassSearch, scan?: { before: ClassSearch; target: number }): { masks: number | null; squares: number | null } {
  const bySquares = scan ? named(scan.before, scan.target) : null;
  return { masks: before.flagged ? before.suspect : bySquares, squares: bySquares ?? (before.flagged ? before.suspect : null) };
}

/** The scan's searches and shares, as the rules read them. */
type ScanSearches = Omit<ScanVerdict, 'backdoorLikely'>;

/** The mask search's rule: the purified model has an outlying class, and it is the original's target (or there is none). */
function masksSay(before: ClassSearch, after: ClassSearch, scan?: ScanSearches): boolean {
  const t = targets(before, scan).masks;
  return after.flagged && (t === null || after.suspect === t);
}

/** The scan's rule: it names the original's target on the purified model too (it says nothing where no target is known). */
function squaresSay(before: ClassSearch, scan: ScanSearches): boolean {
  const t = targets(before, scan).squares;
  return t !== null && named(scan.after, scan.floor) === t;
}

/**
 * The verdict from the original model's search and the purified model's, and the scan's when given: it
 * counts a class on the purified model while its square still sends `floor` of the other images there (a
 * purified model's best square reaches about its residual ASR; up to a fifth on development models left
 * with 2-3%).
 */
export function verdictOf(before: ClassSearch, after: ClassSearch, threshold = VERDICT_DEFAULTS.threshold,
  scan?: { before: ClassSearch; after: ClassSearch; floor?: number; target?: number }): Verdict {
  const squares: ScanSearches | undefined = scan && { before: scan.before, after: scan.after, floor: scan.floor ?? VERDICT_DEFAULTS.scanFloor, target: scan.target ?? VERDICT_DEFAULTS.scanTarget };
  const bySquares = squares ? squaresSay(before, squares) : false;
  return { backdoorLikely: masksSay(before, after, squares) || bySquares, before, after, ...(squares ? { scan: { backdoorLikely: bySquares, ...squares } } : {}), threshold };
}

const described = (s: ClassSearch): string => `class ${s.suspect} is reached with a ${s.suspectMask.toFixed(1)}-pixel mask, the median class with ${s.medianMask.toFixed(1)} (anomaly index ${s.anomalyIndex.toFixed(2)})`;
const scanned = (s: ClassSearch): string => `class ${s.suspect} gets ${(100 * s.successes[s.suspect]).toFixed(0)}% of the other images by a ${Math.sqrt(s.suspectMask).toFixed(0)}-pixel square (anomaly index ${s.anomalyIndex.toFixed(2)})`;

/** The search that says a backdoor likely remains (the mask search first), or null. */
export function flaggedBy(v: Verdict): ClassSearch | null {
  return masksSay(v.before, v.after, v.scan) ? v.after : v.scan?.backdoorLikely ? v.scan.after : null;
}

/** One line for people: what the verdict says and why. */
export function verdictLine(v: Verdict): string {
  const squares = v.scan ? `; square scan after: ${scanned(v.scan.after)}, before: ${scanned(v.scan.before)}` : '';
  const why = `after: ${described(v.after)}; before: ${described(v.before)}${squares}; threshold ${v.threshold}`;
  const by = flaggedBy(v);
  if (by) return `a backdoor likely remains, towards class ${by.suspect} (${by === v.after ? 'mask search' : 'square scan'}): ${why}`;
  const t = targets(v.before, v.scan);
  if (v.after.flagged) return `no backdoor of the original's found (class ${v.after.suspect} stands out after, not the original's class ${t.masks}): ${why}`;
  if (v.scan?.after.flagged) {
    const a = v.scan.after, share = (100 * a.successes[a.suspect]).toFixed(0);
    if (t.squares === null) return `no backdoor found (the square scan named no target on the original, none over ${(100 * v.scan.target).toFixed(0)}%): ${why}`;
    if (a.suspect === t.squares) return `no backdoor found (the original's class ${t.squares} answers a square for ${share}% of the other images, under the floor of ${(100 * v.scan.floor).toFixed(0)}%): ${why}`;
    return `no backdoor of the original's found (class ${a.suspect} stands out after, not the original's class ${t.squares}): ${why}`;
  }
  return `no backdoor found: ${why}`;
}
