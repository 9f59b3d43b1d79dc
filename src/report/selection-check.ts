// `vardefense selection-check`: which channels each VarDefense selection catches. Per model, the
// channels its trigger moves most (experiments/trigger-shift.ts) against each report's selected set:
// recall, the chance level, their ratio, and the excess ASR of the same report, pooled per defense column.
import * as path from 'path';
import { DefendOutcome } from '../pipeline/defend';
import { ModelName } from '../models';
import { DatasetName } from '../data/datasets';
import { VarDefenseReport } from '../defenses/vardefense';
import { MeasureAt, ModelShift, runShiftSource, shiftKey, ShiftRequest, ShiftSource, sourceTriggerShift } from '../experiments/trigger-shift';
import { readRunRecord } from '../train/run-records';
import { csvCell } from '../util/csv';
import { mdTable, Stat, stat } from './aggregate';
import { collectRows, columnOf, excessOf } from './summary';

/** How one selection covers the channels with the largest |shift| among every channel it was chosen from. */
export interface Coverage {
  /** share of the top channels by |shift| that are selected */
  recall: number;
  /** share of all channels that are selected: the recall of a selection blind to the shift */
  chance: number;
  /** recall / chance (null when nothing is selected) */
  ratio: number | null;
  /** mean |shift| percentile of the selected channels (1 = the largest shift, 0 = the smallest; 0.5 by chance) */
  selectedPercentile: number | null;
  /** share of the top channels whose shift is positive (the trigger raises them) */
  topPositive: number;
  /** recall among the top channels the trigger raises, and among those it lowers (null when there are none) */
  recallRaised: number | null; recallLowered: number | null;
  /** how many channels are "top": max(1, round(top * all channels)) */
  topCount: number;
}

/**
 * Coverage of `selected` (channel indices per layer) over the network-wide top `top` fraction of
 * channels by |shift| (signed shifts per layer); ties are broken by layer, then channel order.
 * Network-wide because the shift is in units of each channel's own clean spread, so it compares
 * across layers, and a trigger need not touch every layer: a per-layer top would count channels of
 * layers it leaves alone as "driven".
 */
export function coverage(shifts: ArrayLike<number>[], selected: number[][], top: number): Coverage {
  if (!(top > 0 && top <= 1)) throw new Error(`top must be in (0, 1], got ${top}`);
  if (shifts.length !== selected.length) throw new Error(`coverage: ${shifts.length} layers of shifts but ${selected.length} of selections`);
  const flat = shifts.flatMap((s, layer) => Array.from(s, (v, c) => ({ v, a: Math.abs(v), layer, c })));
  const n = flat.length;
  const chosen = new Set(selected.flatMap((sel, layer) => sel.map((c) => {
    if (!(Number.isInteger(c) && c >= 0 && c < shifts[layer].length)) throw new Error(`coverage: selected channel ${c} of layer ${layer} is outside 0..${shifts[layer].length - 1}`);
    return `${layer}:${c}`;
  })));
  const order = [...flat].sort((x, y) => y.a - x.a || x.layer - y.layer || x.c - y.c);
  const topCount = Math.max(1, Math.round(top * n));
  const head = order.slice(0, topCount);
  const caught = (xs: typeof head): number | null => (xs.length ? xs.filter((x) => chosen.has(`${x.layer}:${x.c}`)).length / xs.length : null);
  const recall = caught(head)!;
  const chance = chosen.size / n;
  // percentile by average rank among ties, 0 = smallest |shift|
  const ascending = [...flat].sort((x, y) => x.a - y.a);
  const percentile = new Map<string, number>();
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && ascending[j + 1].a === ascending[i].a) j++;
    for (let k = i; k <= j; k++) percentile.set(`${ascending[k].layer}:${ascending[k].c}`, n > 1 ? (i + j) / 2 / (n - 1) : 0.5);
    i = j + 1;
  }
  const ps = [...chosen].map((k) => percentile.get(k)!);
  return {
    recall, chance, ratio: chance > 0 ? recall / chance : null, selectedPercentile: ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : null,
    topPositive: head.filter((x) => x.v > 0).length / topCount, recallRaised: caught(head.filter((x) => x.v > 0)),
    recallLowered: caught(head.filter((x) => !(x.v > 0))), topCount,
  };
}

/** One VarDefense report checked against its model's trigger shifts. */
export interface SelectionCheckRow extends Coverage {
  /** the model: its training run, or its weights file (a model defended with --weights) */
  model: string;
  /** the defense as the report tables name it: 'vardefense:bn-distill (statsSource="original-eval")'; its defense and settings */
  column: string; defense: string; settings: string;
  /** ASR after - clean->target after (null without them) */
  excessAsr: number | null;
  measureAt: MeasureAt;
  channels: number;
  /** clean non-target images the shift was measured over */
  images: number;
  dir: string;
}

export interface SelectionCheckOptions { top?: number; dataDir?: string; log?: (line: string) => void }

/**
 * Where a report's model, trigger and clean images come from: its training run, or (defended with
 * --weights) its weights, target and seeded clean draw. The caller's own clean images are not kept
 * with a report, so such reports are refused.
 */
function shiftSourceOf(o: DefendOutcome, file: string, runs: Map<string, ShiftSource>): ShiftSource {
  const run = o.source.run;
  if (run) {
    // a run holds many reports: its config and clean split are read once
    if (!runs.has(run)) {
      try { runs.set(run, runShiftSource(run)); } catch (e) { throw new Error(`${file}: its model's run ${run}: ${(e as Error).message}`); }
    }
    return runs.get(run)!;
  }
  const t = o.source.target, c = o.source.clean;
  if (!t) throw new Error(`${file}: source.run and source.target missing: the shift needs the model's training run, or its weights, architecture and attack`);
  if (c?.kind !== 'split' || c.seed === undefined)
    throw new Error(`${file}: the clean data was the caller's own images (${c?.path ?? c?.kind ?? 'unrecorded'}); the shift needs a --clean-size draw or a training run`);
  return { label: o.source.weights, model: { model: t.model as ModelName, width: t.width, dataset: t.dataset as DatasetName, weights: o.source.weights, norm: t.norm },
    attack: t.attack, clean: { kind: 'split', dataset: t.dataset as DatasetName, size: c.size, seed: c.seed } };
}

/** Every VarDefense report under `dirs` (report.json with perLayer), grouped by model: one shift pass per model. */
export function selectionChecks(dirs: string[], o: SelectionCheckOptions = {}): SelectionCheckRow[] {
  const top = o.top ?? 0.05;
  const runs = new Map<string, ShiftSource>();
  const reports = collectRows(dirs).filter((r) => r.defense.split(':')[0] === 'vardefense').map((r) => {
    const file = path.join(r.dir, 'report.json');
    const outcome = readRunRecord<DefendOutcome>(file);
    const rep = outcome.report as VarDefenseReport;
    if (!Array.isArray(rep.perLayer) || !Array.isArray(rep.layers)) throw new Error(`${file}: report.perLayer / report.layers missing (not a VarDefense report?)`);
    return { row: r, rep, source: shiftSourceOf(outcome, file, runs), file };
  });
  const keyOf = (x: ShiftSource): string => JSON.stringify([x.label, x.attack, x.clean]);
  const models = [...new Set(reports.map((x) => keyOf(x.source)))].sort();
  const out: SelectionCheckRow[] = [];
  models.forEach((key, i) => {
    const mine = reports.filter((x) => keyOf(x.source) === key);
    const src = mine[0].source;
    const requests: ShiftRequest[] = mine.map((x) => ({ layers: x.rep.layers, measureAt: x.rep.options.measureAt }));
    o.log?.(`model ${i + 1}/${models.length}: ${src.label} (${mine.length} reports)`);
    let shift: ModelShift;
    try {
      shift = sourceTriggerShift(src, requests, o.dataDir);
    } catch (e) {
      throw new Error(`${mine[0].file}: its model ${src.label}: ${(e as Error).message}`);
    }
    for (const { row, rep } of mine) {
      const at = rep.options.measureAt;
      const shifts = rep.layers.map((l) => shift.shifts.get(shiftKey(at, l))!);
      const selected = rep.layers.map((l) => {
        const p = rep.perLayer.find((x) => x.name === l);
        if (!p) throw new Error(`${path.join(row.dir, 'report.json')}: no perLayer entry for layer '${l}'`);
        return p.selected;
      });
      out.push({
        model: shift.model, column: columnOf(row), defense: row.defense, settings: row.settings, ...coverage(shifts, selected, top),
        excessAsr: excessOf(row),
        measureAt: at, channels: shifts.reduce((a, s) => a + s.length, 0), images: shift.images, dir: row.dir,
      });
    }
  });
  return out;
}

export interface SelectionCheckSummary {
  column: string;
  /** models (one report each is expected; more are pooled as they come) */
  n: number;
  recall: Stat | null; chance: Stat | null; ratio: Stat | null; selectedPercentile: Stat | null; topPositive: Stat | null;
  recallRaised: Stat | null; recallLowered: Stat | null; excessAsr: Stat | null;
  /** models on which this column's recall is above control-random's (with the same settings, else with none), of those with both */
  recallAboveRandom: { wins: number; of: number } | null;
}

const RANDOM = 'vardefense:control-random';

/** One line per defense column: mean ± sample std over its models. */
export function summarizeChecks(rows: SelectionCheckRow[]): SelectionCheckSummary[] {
  const columns = [...new Set(rows.map((r) => r.column))];
  const randomOf = (r: SelectionCheckRow): SelectionCheckRow | undefined => {
    const mine = rows.filter((x) => x.defense === RANDOM && x.model === r.model);
    return mine.find((x) => x.settings === r.settings) ?? mine.find((x) => x.settings === '');
  };
  return columns.map((column) => {
    const g = rows.filter((r) => r.column === column);
    const of = (f: (r: SelectionCheckRow) => number | null): Stat | null => stat(g.map(f).filter((v): v is number => v !== null));
    const paired = g.flatMap((r) => { const x = randomOf(r); return x ? [{ r, random: x.recall }] : []; });
    return {
      column, n: new Set(g.map((r) => r.model)).size, recall: of((r) => r.recall), chance: of((r) => r.chance), ratio: of((r) => r.ratio),
      selectedPercentile: of((r) => r.selectedPercentile), topPositive: of((r) => r.topPositive), recallRaised: of((r) => r.recallRaised),
      recallLowered: of((r) => r.recallLowered), excessAsr: of((r) => r.excessAsr),
      recallAboveRandom: g[0].defense === RANDOM || paired.length === 0 ? null : { wins: paired.filter((x) => x.r.recall > x.random).length, of: paired.length },
    };
  });
}

const fmt = (s: Stat | null, scale: number, digits: number): string =>
  (s ? `${(scale * s.mean).toFixed(digits)} ± ${s.std === null ? '-' : (scale * s.std).toFixed(digits)}` : '-');

const COLUMNS: [string, (s: SelectionCheckSummary) => string][] = [
  ['defense', (s) => s.column], ['models', (s) => String(s.n)], ['recall (%)', (s) => fmt(s.recall, 100, 1)], ['chance (%)', (s) => fmt(s.chance, 100, 1)],
  ['recall / chance', (s) => fmt(s.ratio, 1, 2)], ['selected |shift| percentile', (s) => fmt(s.selectedPercentile, 100, 1)],
  ['recall > control-random', (s) => (s.recallAboveRandom ? `${s.recallAboveRandom.wins} of ${s.recallAboveRandom.of}` : '-')],
  ['top channels raised (%)', (s) => fmt(s.topPositive, 100, 1)], ['recall, raised (%)', (s) => fmt(s.recallRaised, 100, 1)],
  ['recall, lowered (%)', (s) => fmt(s.recallLowered, 100, 1)], ['excess ASR (%)', (s) => fmt(s.excessAsr, 100, 2)],
];

export const checksMarkdown = (s: SelectionCheckSummary[]): string => mdTable(COLUMNS.map(([h]) => h), s.map((x) => COLUMNS.map(([, f]) => f(x))));

const STATS = ['recall', 'chance', 'ratio', 'selectedPercentile', 'topPositive', 'recallRaised', 'recallLowered', 'excessAsr'] as const;

/** Flat CSV (fractions): <stat>Mean and <stat>Std per column. */
export function checksCsv(s: SelectionCheckSummary[]): string {
  const head = ['defense', 'models', ...STATS.flatMap((k) => [`${k}Mean`, `${k}Std`]), 'recallAboveRandomWins', 'recallAboveRandomOf'];
  const line = (x: SelectionCheckSummary): string => [x.column, x.n, ...STATS.flatMap((k) => [x[k]?.mean ?? null, x[k]?.std ?? null]),
    x.recallAboveRandom?.wins ?? null, x.recallAboveRandom?.of ?? null].map(csvCell).join(',');
  return [head.join(','), ...s.map(line)].join('\n');
}

/** The summary as Markdown (with a line saying what was measured), CSV, or JSON (summary and per-model rows). */
export function checksText(rows: SelectionCheckRow[], format: 'markdown' | 'csv' | 'json', top: number): string {
  const s = summarizeChecks(rows);
  if (format === 'json') return JSON.stringify({ top, summary: s, rows }, null, 1);
  if (format === 'csv') return checksCsv(s);
  const models = new Set(rows.map((r) => r.model)).size;
  return `recall of the top ${(100 * top).toFixed(1)}% of measured channels by |trigger shift| (network-wide), mean ± std over ${models} model(s):\n\n${checksMarkdown(s)}`;
}
