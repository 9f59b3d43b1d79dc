// `vardefense report --aggregate`: runs that differ only in their seeds (training seed, attack seed,
// a defense's `seed` option) pooled into one row with n, mean and sample standard deviation.
import { columnOf, excessOf, SummaryRow } from './summary';
import { csvCell } from '../util/csv';

/** Mean and sample standard deviation (n - 1); std is null for a single value. */
export interface Stat { mean: number; std: number | null }

export interface AggregateRow {
  dataset: string; model: string; attack: string; defense: string; settings: string;
  /** hash of the training config with its seeds removed: rows with different ones never pool */
  condition: string;
  n: number; seeds: number[];
  accBefore: Stat; accAfter: Stat; asrBefore: Stat | null; asrAfter: Stat | null; floorAfter: Stat | null;
  /** ASR after - clean->target after, per run: the backdoor's share above what the clean model already calls target */
  excessAsr: Stat | null;
  seconds: Stat;
}

/** Null when there are no values; std null for one value. */
export function stat(values: number[]): Stat | null {
  if (values.length === 0) return null;
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  if (values.length === 1) return { mean, std: null };
  const ss = values.reduce((s, v) => s + (v - mean) ** 2, 0);
  return { mean, std: Math.sqrt(ss / (values.length - 1)) };
}

/** A defense's `seed` option is a seed too: it is dropped from the settings that key a group. */
const settingsWithoutSeed = (s: string): string => s.split(' ').filter((kv) => kv && !kv.startsWith('seed=')).join(' ');
/** WaNet's label names its field seed; pooled runs may each have their own. */
const attackWithoutSeed = (a: string): string => a.replace(/, field seed \d+/, '');

/** One row per (dataset, model, attack, defense, settings, condition), in the order of first appearance. */
export function aggregateRows(rows: SummaryRow[]): AggregateRow[] {
  const groups = new Map<string, SummaryRow[]>();
  for (const r of rows) {
    const key = [r.dataset, r.model, attackWithoutSeed(r.attack), r.defense, settingsWithoutSeed(r.settings), r.condition ?? ''].join('\n');
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const of = (f: (r: SummaryRow) => number | null): Stat | null => stat(g.map(f).filter((v): v is number => v !== null && !Number.isNaN(v)));
    const r = g[0];
    return {
      dataset: r.dataset, model: r.model, attack: attackWithoutSeed(r.attack), defense: r.defense, settings: settingsWithoutSeed(r.settings),
      condition: r.condition ?? '', n: g.length, seeds: g.map((x) => x.seed).filter((s): s is number => s !== undefined).sort((a, b) => a - b),
      accBefore: of((x) => x.accBefore)!, accAfter: of((x) => x.accAfter)!, asrBefore: of((x) => x.asrBefore), asrAfter: of((x) => x.asrAfter),
      floorAfter: of((x) => x.floorAfter), excessAsr: of(excessOf),
      seconds: of((x) => x.seconds)!,
    };
  });
}

/** True when some condition was run with more than one seed: the report then shows the pooled table. */
export const hasSeedRepeats = (rows: SummaryRow[]): boolean => aggregateRows(rows).some((a) => a.n > 1);

/** '91.23 ± 0.45' in percent (points for the std), '91.23 ± -' for one run, '-' for none. */
export function pctStat(s: Stat | null): string {
  if (!s) return '-';
  return `${(100 * s.mean).toFixed(2)} ± ${s.std === null ? '-' : (100 * s.std).toFixed(2)}`;
}

const secStat = (s: Stat): string => `${s.mean.toFixed(0)} ± ${s.std === null ? '-' : s.std.toFixed(0)}`;

/** Header and cells of the pooled table (markdown and HTML share them). */
export const AGGREGATE_COLUMNS: [string, (a: AggregateRow) => string][] = [
  ['dataset', (a) => a.dataset], ['model', (a) => a.model], ['attack', (a) => a.attack], ['defense', (a) => a.defense], ['settings', (a) => a.settings],
  ['n', (a) => String(a.n)], ['ACC before (%)', (a) => pctStat(a.accBefore)], ['ACC after (%)', (a) => pctStat(a.accAfter)],
  ['ASR before (%)', (a) => pctStat(a.asrBefore)], ['ASR after (%)', (a) => pctStat(a.asrAfter)],
  ['clean->target after (%)', (a) => pctStat(a.floorAfter)], ['excess ASR (%)', (a) => pctStat(a.excessAsr)], ['time (s)', (a) => secStat(a.seconds)],
];

const mdRow = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;

/** A Markdown table of a header and lines of cells ('|' escaped). */
export const mdTable = (head: string[], lines: string[][]): string => [mdRow(head), `|${head.map(() => '---').join('|')}|`, ...lines.map(mdRow)].join('\n');

export function aggregateMarkdown(rows: AggregateRow[]): string {
  return mdTable(AGGREGATE_COLUMNS.map(([h]) => h), rows.map((a) => AGGREGATE_COLUMNS.map(([, f]) => f(a))));
}

const accAsrCell = (a: AggregateRow): string => `${pctStat(a.accAfter)} / ${pctStat(a.asrAfter)}`;

/** The paper's layout over pooled rows: one line per dataset, model, attack (and condition), one column per defense setting. */
export function aggregatePivot(rows: AggregateRow[], cell: (a: AggregateRow) => string = accAsrCell, undefended = 'no defense'): { head: string[]; lines: string[][] } {
  const columns = [...new Set(rows.map(columnOf))];
  const lineKey = (a: AggregateRow): string => [a.dataset, a.model, a.attack, a.condition].join('\n');
  const lines = [...new Set(rows.map(lineKey))].map((k) => {
    const mine = rows.filter((a) => lineKey(a) === k);
    const cells = columns.map((c) => { const a = mine.find((x) => columnOf(x) === c); return a ? cell(a) : ''; });
    const n = [...new Set(mine.map((a) => a.n))].join(',');
    return [...k.split('\n').slice(0, 3), n, `${pctStat(mine[0].accBefore)} / ${pctStat(mine[0].asrBefore)}`, ...cells];
  });
  return { head: ['dataset', 'model', 'attack', 'n', undefended, ...columns], lines };
}

/**
 * The same pooled cells turned around: one line per defense setting, one column per attack (with its
 * undefended ACC / ASR as the first line); easier to read when defenses outnumber attacks.
 */
export function aggregateByDefense(rows: AggregateRow[], cell: (a: AggregateRow) => string = accAsrCell, undefended = 'no defense'): { head: string[]; lines: string[][] } {
  const attackKey = (a: AggregateRow): string => [a.dataset, a.model, a.attack, a.condition].join('\n');
  const attacks = [...new Set(rows.map(attackKey))];
  const first = (k: string): AggregateRow => rows.find((a) => attackKey(a) === k)!;
  const many = (f: (a: AggregateRow) => string): boolean => new Set(rows.map(f)).size > 1;
  const name = (a: AggregateRow): string => [many((x) => x.dataset) ? a.dataset : '', many((x) => x.model) ? a.model : '', a.attack].filter(Boolean).join(', ');
  const head = ['defense', ...attacks.map((k) => `${name(first(k))} (n ${[...new Set(rows.filter((a) => attackKey(a) === k).map((a) => a.n))].join(',')})`)];
  const undefendedLine = [undefended, ...attacks.map((k) => `${pctStat(first(k).accBefore)} / ${pctStat(first(k).asrBefore)}`)];
  const lines = [...new Set(rows.map(columnOf))].map((c) => [c, ...attacks.map((k) => {
    const a = rows.find((x) => columnOf(x) === c && attackKey(x) === k);
    return a ? cell(a) : '';
  })]);
  return { head, lines: [undefendedLine, ...lines] };
}

type Layout = (rows: AggregateRow[], cell: (a: AggregateRow) => string, undefended: string) => { head: string[]; lines: string[][] };

/**
 * A layout twice: ACC / ASR after, then excess ASR after (ASR - clean->target, per run, pooled); the
 * undefended model's entry stays ACC / ASR in both, and says so in the second.
 */
function twoTables(rows: AggregateRow[], layout: Layout): string {
  const table = (cell: (a: AggregateRow) => string, undefended: string): string => { const { head, lines } = layout(rows, cell, undefended); return mdTable(head, lines); };
  return `ACC / ASR after (%), mean ± std over seeds:\n\n${table(accAsrCell, 'no defense')}\n\n` +
    `excess ASR after (ASR - clean->target, %), mean ± std over seeds:\n\n${table((a) => pctStat(a.excessAsr), 'no defense (ACC / ASR)')}`;
}

export const aggregateByDefenseMarkdown = (rows: AggregateRow[]): string => twoTables(rows, aggregateByDefense);

/** Two pivots: ACC / ASR after, then excess ASR after. */
export const aggregatePivotMarkdown = (rows: AggregateRow[]): string => twoTables(rows, aggregatePivot);

const STATS = ['accBefore', 'accAfter', 'asrBefore', 'asrAfter', 'floorAfter', 'excessAsr', 'seconds'] as const;

/** Flat CSV: <metric>Mean and <metric>Std columns (fractions; seconds in seconds), seeds as 1;2;3. */
export function aggregateCsv(rows: AggregateRow[]): string {
  const head = ['dataset', 'model', 'attack', 'defense', 'settings', 'condition', 'n', 'seeds', ...STATS.flatMap((k) => [`${k}Mean`, `${k}Std`])];
  const line = (a: AggregateRow): string => [a.dataset, a.model, a.attack, a.defense, a.settings, a.condition, a.n, a.seeds.join(';'),
    ...STATS.flatMap((k) => [a[k]?.mean ?? null, a[k]?.std ?? null])].map(csvCell).join(',');
  return [head.join(','), ...rows.map(line)].join('\n');
}

export function aggregateText(rows: SummaryRow[], format: 'markdown' | 'pivot' | 'by-defense' | 'csv' | 'json'): string {
  const a = aggregateRows(rows);
  return { json: () => JSON.stringify(a, null, 1), csv: () => aggregateCsv(a), pivot: () => aggregatePivotMarkdown(a), 'by-defense': () => aggregateByDefenseMarkdown(a),
    markdown: () => aggregateMarkdown(a) }[format]();
}
