// `vardefense report --standings` and `--compare <defense>`: defenses judged on the same models. A mean over
// seeds hides that models differ far more than defenses on one model; differences taken per model (paired)
// and an exact sign test say whether one defense beats another beyond that spread.
import { columnOf, excessOf, SummaryRow } from './summary';
import { mdTable, Stat, pctStat, stat } from './aggregate';
import { csvCell } from '../util/csv';

/** One backdoored model: runs with equal keys were defended from the same weights. */
const modelOf = (r: SummaryRow): string => [r.dataset, r.model, r.attack, r.seed ?? '', r.condition ?? '', r.accBefore, r.asrBefore].join('\n');

/**
 * The goal of docs/protocol.md, per attack setting on the means over seeds: a patch at excess ASR <= 0.5
 * points with ACC drop <= 1 point; blended noise at ASR <= 5% with drop <= 1.5 points; no goal otherwise.
 */
export function meetsGoal(attack: string, accDrop: number, asr: number, excess: number): boolean | null {
  if (/patch/.test(attack)) return excess <= 0.005 && accDrop <= 0.01;
  if (/^blended noise/.test(attack)) return asr <= 0.05 && accDrop <= 0.015;
  return null;
}

/** Two-sided exact sign test: the chance of a split at least this uneven between `wins` and `losses` if both were equally likely. */
export function signTestP(wins: number, losses: number): number {
  const n = wins + losses;
  if (n === 0) return 1;
  const k = Math.min(wins, losses);
  let tail = 0;
  let c = 1; // C(n, 0)
  for (let i = 0; i <= k; i++) {
    tail += c;
    c = (c * (n - i)) / (i + 1);
  }
  return Math.min(1, (2 * tail) / 2 ** n);
}

export interface Standing {
  defense: string; models: number;
  accDrop: Stat; asrAfter: Stat | null; excessAsr: Stat | null;
  /** ACC after - ASR after, per model: the single number the protocol ranks defenses by */
  accMinusAsr: Stat | null;
  /** attack settings whose means meet the goal, of those that have one */
  goalsMet: number; goalsTotal: number;
  seconds: Stat;
  /** the worst run: the largest excess ASR and the largest ACC drop */
  worstExcess: number | null; worstAccDrop: number;
  /**
   * the verdict against the residual ASR (a backdoor left = ASR after above VERDICT_ASR): right
   * answers, misses (ASR above, verdict none) and false alarms (ASR below, verdict likely), over the
   * runs that have a verdict; null when none has
   */
  verdict: { runs: number; right: number; misses: number; falseAlarms: number } | null;
}

/** The residual ASR above which a backdoor counts as left, for the verdict's tally (issue 27). */
export const VERDICT_ASR = 0.05;

function verdictTally(rows: SummaryRow[]): Standing['verdict'] {
  const judged = rows.filter((r) => r.verdictLikely !== undefined && r.asrAfter !== null);
  if (!judged.length) return null;
  const misses = judged.filter((r) => r.asrAfter! > VERDICT_ASR && !r.verdictLikely).length;
  const falseAlarms = judged.filter((r) => r.asrAfter! <= VERDICT_ASR && r.verdictLikely).length;
  return { runs: judged.length, right: judged.length - misses - falseAlarms, misses, falseAlarms };
}

/** One line per defense over all its models, best mean (ACC - ASR) first. */
export function standings(rows: SummaryRow[]): Standing[] {
  const columns = [...new Set(rows.map(columnOf))];
  return columns.map((defense): Standing => {
    const mine = rows.filter((r) => columnOf(r) === defense);
    const values = (f: (r: SummaryRow) => number | null, of = mine): number[] => of.map(f).filter((v): v is number => v !== null);
    let goalsMet = 0;
    let goalsTotal = 0;
    for (const attack of new Set(mine.map((r) => r.attack))) {
      const g = mine.filter((r) => r.attack === attack);
      const m = (v: number[]): number => v.reduce((s, x) => s + x, 0) / v.length;
      const excess = values(excessOf, g);
      const asr = values((r) => r.asrAfter, g);
      if (excess.length === 0) continue;
      const met = meetsGoal(attack, m(g.map((r) => r.accBefore - r.accAfter)), m(asr), m(excess));
      if (met === null) continue;
      goalsTotal++;
      if (met) goalsMet++;
    }
    return {
      defense, models: mine.length, accDrop: stat(mine.map((r) => r.accBefore - r.accAfter))!, asrAfter: stat(values((r) => r.asrAfter)),
      excessAsr: stat(values(excessOf)), accMinusAsr: stat(values((r) => (r.asrAfter === null ? null : r.accAfter - r.asrAfter))),
      goalsMet, goalsTotal, seconds: stat(mine.map((r) => r.seconds))!,
      worstExcess: values(excessOf).length ? Math.max(...values(excessOf)) : null, worstAccDrop: Math.max(...mine.map((r) => r.accBefore - r.accAfter)),
      verdict: verdictTally(mine),
    };
  }).sort((a, b) => (b.accMinusAsr?.mean ?? -Infinity) - (a.accMinusAsr?.mean ?? -Infinity));
}

export interface Comparison {
  /** the other defense; differences are other - base, per model both ran on */
  other: string; pairs: number;
  excessDiff: Stat | null; accDiff: Stat | null;
  /** models where the base's excess ASR is lower (better) / higher than the other's by more than `tie` */
  baseBetter: number; otherBetter: number; ties: number; p: number;
}

/** `base` against every other defense, paired by model; excess ASR within `tie` of each other counts as a tie. */
export function compareWith(rows: SummaryRow[], base: string, tie = 0.001): Comparison[] {
  const columns = [...new Set(rows.map(columnOf))];
  if (!columns.includes(base)) throw new Error(`--compare: no defense '${base}' in these reports (there are: ${columns.join(', ')})`);
  const baseByModel = new Map(rows.filter((r) => columnOf(r) === base).map((r) => [modelOf(r), r]));
  return columns.filter((c) => c !== base).map((other): Comparison => {
    const pairs = rows.filter((r) => columnOf(r) === other && baseByModel.has(modelOf(r))).map((r) => [baseByModel.get(modelOf(r))!, r] as const);
    const diffs = pairs.map(([b, o]) => { const eb = excessOf(b); const eo = excessOf(o); return eb === null || eo === null ? null : eo - eb; })
      .filter((d): d is number => d !== null);
    const baseBetter = diffs.filter((d) => d > tie).length;
    const otherBetter = diffs.filter((d) => d < -tie).length;
    return {
      other, pairs: pairs.length, excessDiff: stat(diffs), accDiff: stat(pairs.map(([b, o]) => o.accAfter - b.accAfter)),
      baseBetter, otherBetter, ties: diffs.length - baseBetter - otherBetter, p: signTestP(baseBetter, otherBetter),
    };
  });
}

const secStat = (s: Stat): string => `${s.mean.toFixed(0)} ± ${s.std === null ? '-' : s.std.toFixed(0)}`;
const signed = (s: Stat | null): string => (s ? `${s.mean >= 0 ? '+' : ''}${pctStat(s)}` : '-');

export function standingsText(rows: SummaryRow[], format: 'markdown' | 'csv' | 'json'): string {
  const s = standings(rows);
  if (format === 'json') return JSON.stringify(s, null, 1);
  if (format === 'csv') {
    const head = ['defense', 'models', 'accDropMean', 'accDropStd', 'asrAfterMean', 'asrAfterStd', 'excessAsrMean', 'excessAsrStd', 'accMinusAsrMean', 'accMinusAsrStd',
      'goalsMet', 'goalsTotal', 'secondsMean', 'worstExcessAsr', 'worstAccDrop', 'verdictRuns', 'verdictRight', 'verdictMisses', 'verdictFalseAlarms'];
    return [head.join(','), ...s.map((x) => [x.defense, x.models, x.accDrop.mean, x.accDrop.std, x.asrAfter?.mean, x.asrAfter?.std, x.excessAsr?.mean, x.excessAsr?.std,
      x.accMinusAsr?.mean, x.accMinusAsr?.std, x.goalsMet, x.goalsTotal, x.seconds.mean, x.worstExcess, x.worstAccDrop,
      x.verdict?.runs, x.verdict?.right, x.verdict?.misses, x.verdict?.falseAlarms].map((v) => csvCell(v ?? null)).join(','))].join('\n');
  }
  const { head, lines } = standingsTable(s);
  return mdTable(head, lines);
}

/** Header and cells of the standings (markdown and HTML share them). */
export function standingsTable(s: Standing[]): { head: string[]; lines: string[][] } {
  return {
    head: ['defense', 'models', 'ACC drop (pt)', 'ASR after (%)', 'excess ASR (%)', 'ACC - ASR (pt)', 'settings at goal', 'time (s)',
      'worst excess ASR (%)', 'worst ACC drop (pt)', 'verdict right / misses / false alarms'],
    lines: s.map((x) => [x.defense, String(x.models), pctStat(x.accDrop), pctStat(x.asrAfter), pctStat(x.excessAsr), pctStat(x.accMinusAsr),
      x.goalsTotal ? `${x.goalsMet}/${x.goalsTotal}` : '-', secStat(x.seconds), x.worstExcess === null ? '-' : (100 * x.worstExcess).toFixed(2),
      (100 * x.worstAccDrop).toFixed(2), x.verdict ? `${x.verdict.right} / ${x.verdict.misses} / ${x.verdict.falseAlarms} of ${x.verdict.runs}` : '-']),
  };
}

export function comparisonText(rows: SummaryRow[], base: string, format: 'markdown' | 'csv' | 'json'): string {
  const c = compareWith(rows, base);
  if (format === 'json') return JSON.stringify({ base, comparisons: c }, null, 1);
  if (format === 'csv') {
    const head = ['base', 'other', 'pairs', 'excessDiffMean', 'excessDiffStd', 'accDiffMean', 'accDiffStd', 'baseBetter', 'otherBetter', 'ties', 'signTestP'];
    return [head.join(','), ...c.map((x) => [base, x.other, x.pairs, x.excessDiff?.mean, x.excessDiff?.std, x.accDiff?.mean, x.accDiff?.std, x.baseBetter, x.otherBetter,
      x.ties, x.p].map((v) => csvCell(v ?? null)).join(','))].join('\n');
  }
  return mdTable(['other defense', 'models', 'excess ASR, other - base (pt)', 'ACC, other - base (pt)', `${base} better / worse / tie`, 'sign test p'],
    c.map((x) => [x.other, String(x.pairs), signed(x.excessDiff), signed(x.accDiff), `${x.baseBetter} / ${x.otherBetter} / ${x.ties}`, x.p.toPrecision(2)]));
}
