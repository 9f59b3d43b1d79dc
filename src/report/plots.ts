// The report's figures as Vega-Lite specs, rendered to SVG strings in Node (no browser, no canvas).
import { SummaryRow } from './summary';
import { defenseMethod, resolveOptions } from '../defenses/registry';
import { percentScale } from './ticks';
import { standingsSpec } from './standings-figure';

export interface Figure { id: string; caption: string; svg: string | null; /** why the figure is absent */ note?: string }

interface VegaView { toSVG(): Promise<string>; finalize(): void }
interface Vega { View: new (runtime: unknown, o: { renderer: string }) => VegaView; parse(spec: object): unknown }
interface VegaLite { compile(spec: object): { spec: object } }

// vega and vega-lite are ESM-only; tsc (module commonjs) would turn a plain import() into require().
const importEsm = new Function('s', 'return import(s)') as <T>(s: string) => Promise<T>;

export async function render(spec: object): Promise<string> {
  const [vega, vl] = await Promise.all([importEsm<Vega>('vega'), importEsm<VegaLite>('vega-lite')]);
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try { return await view.toSVG(); } finally { view.finalize(); }
}

/** The numeric value of `key=...` in a row's settings, or null (absent or not a number, e.g. lambda="auto"). */
export function settingValue(settings: string, key: string): number | null {
  const m = new RegExp(`(?:^| )${key}=(\\S+)`).exec(settings);
  if (!m) return null;
  try { const v = JSON.parse(m[1]) as unknown; return typeof v === 'number' && Number.isFinite(v) ? v : null; } catch { return null; }
}

/** ACC after and ASR after of each row as two long-format records (ASR only where there is an attack). */
function metrics<T extends object>(rows: SummaryRow[], extra: (r: SummaryRow) => T): (T & { metric: string; value: number })[] {
  return rows.flatMap((r) => [{ metric: 'ACC after', value: r.accAfter }, ...(r.asrAfter === null ? [] : [{ metric: 'ASR after', value: r.asrAfter }])]
    .map((m) => ({ ...extra(r), ...m })));
}

const pctAxis = (title: string): object => ({ title, ...percentScale(0, 1) });

/** Where a purified model counts as a success: the backdoor gone (ASR under 5%) at almost no accuracy cost. */
export const GOAL = { maxAsr: 0.05, maxAccDrop: 0.01 };
const GOAL_LABEL = 'ASR < 5%, ACC drop < 1 pt';

/** The ACC / ASR scatter, one panel per attack, with each dataset's goal region shaded and labelled. */
export function accAsrSpec(attacked: SummaryRow[]): object | null {
  if (attacked.length === 0) return null;
  const before = new Map<string, number[]>();
  for (const r of attacked) before.set(`${r.attack}\n${r.dataset}`, [...(before.get(`${r.attack}\n${r.dataset}`) ?? []), r.accBefore]);
  const goalX0 = [...before.values()].map((v) => v.reduce((a, b) => a + b, 0) / v.length - GOAL.maxAccDrop);
  const xs = [...attacked.flatMap((r) => [r.accAfter, r.accBefore]), ...goalX0];
  const x = percentScale(Math.min(...xs), Math.max(...xs), 4); // 4 labels fit a 220-px panel without Vega hiding every other one
  const goals = [...before.entries()].map(([k, v]) => {
    const [attack, dataset] = k.split('\n');
    return { kind: 'goal', attack, dataset, x0: v.reduce((a, b) => a + b, 0) / v.length - GOAL.maxAccDrop, x1: x.scale.domain[1], y0: 0, y1: GOAL.maxAsr };
  });
  const xEnc = (field: string): object => ({ field, type: 'quantitative', title: 'ACC after', ...x });
  const yEnc = (field: string): object => ({ field, type: 'quantitative', ...pctAxis('ASR after') });
  const only = (kind: string): object[] => [{ filter: `datum.kind === '${kind}'` }];
  return {
    data: { values: [...goals, ...attacked.map((r) => ({ kind: 'run', ...r }))] }, columns: 3,
    facet: { field: 'attack', type: 'nominal', title: null },
    spec: {
      width: 220, height: 180,
      layer: [
        { transform: only('goal'), mark: { type: 'rect', color: '#2ca02c', opacity: 0.18 },
          encoding: { x: xEnc('x0'), x2: { field: 'x1' }, y: yEnc('y0'), y2: { field: 'y1' } } },
        { transform: only('goal'), mark: { type: 'text', align: 'right', baseline: 'bottom', dy: -2, fontSize: 9, color: '#1e6b1e' },
          encoding: { x: xEnc('x1'), y: yEnc('y1'), text: { value: `goal: ${GOAL_LABEL}` } } },
        { transform: only('run'), mark: { type: 'point', filled: true, size: 70 },
          encoding: {
            x: xEnc('accAfter'), y: yEnc('asrAfter'),
            color: { field: 'defense', type: 'nominal', title: 'defense', legend: { labelLimit: 300 } }, shape: { field: 'dataset', type: 'nominal', title: 'dataset' },
            tooltip: [{ field: 'defense' }, { field: 'dataset' }, { field: 'settings' }, { field: 'accAfter', format: '.2%' }, { field: 'asrAfter', format: '.2%' }],
          } },
      ],
    },
  };
}

/** The preset's own value of an option ('vardefense:paper', 'layers' -> 4), or null. */
function presetValue(defense: string, key: string): number | null {
  const [method, preset = 'default'] = defense.split(':');
  try {
    const v = resolveOptions(defenseMethod(method), preset)[key];
    return typeof v === 'number' ? v : null;
  } catch { return null; }
}

function sweepSpec(rows: SummaryRow[], key: string, title: string, scale: object, axis: object = {}): object | null {
  const series = (r: SummaryRow): string => `${r.defense} · ${r.attack} · ${r.dataset}`;
  const swept = rows.filter((r) => settingValue(r.settings, key) !== null);
  if (swept.length === 0) return null;
  // a swept value equal to the preset's shows no setting: the preset's own run is that point of the curve
  const sweptSeries = new Set(swept.map(series));
  const presetRuns = rows.filter((r) => r.settings === '' && sweptSeries.has(series(r)) && presetValue(r.defense, key) !== null);
  const x = (r: SummaryRow): number | null => settingValue(r.settings, key) ?? presetValue(r.defense, key);
  const values = metrics([...swept, ...presetRuns], (r) => ({ x: x(r), series: series(r) }));
  return {
    data: { values }, columns: 2,
    facet: { field: 'series', type: 'nominal', title: null },
    spec: {
      width: 320, height: 200, mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'x', type: 'quantitative', title, scale, axis }, y: { field: 'value', type: 'quantitative', ...pctAxis('after defense') },
        color: { field: 'metric', type: 'nominal', title: null }, tooltip: [{ field: 'x' }, { field: 'metric' }, { field: 'value', format: '.2%' }],
      },
    },
  };
}

/** The report's five figures; a figure whose data is absent has svg null and a note. */
export async function buildFigures(rows: SummaryRow[]): Promise<Figure[]> {
  // Defense comparisons use one run per defense and model: the preset's own where there is one (ablation
  // variants such as lambda or layers sweeps have their own figures or only the table).
  const key = (r: SummaryRow): string => [r.dataset, r.model, r.attack, r.defense].join('\n');
  const presetRun = new Set(rows.filter((r) => r.settings === '').map(key));
  const main = rows.filter((r) => r.settings === '' || !presetRun.has(key(r)));
  const attacked = main.filter((r) => r.asrAfter !== null);
  const specs: { id: string; caption: string; spec: object | null; note: string }[] = [
    { id: 'fig-acc-asr', note: 'no rows with an attack', spec: accAsrSpec(attacked),
      caption: `ASR after vs ACC after per defense (color) and dataset (shape), one panel per attack; lower right is better. Shaded: the goal region (${GOAL_LABEL}), one per dataset.` },
    { id: 'fig-lambda', caption: 'Lambda trade-off: ACC and ASR after defense vs lambda (symlog scale).', note: 'no rows with a numeric lambda setting',
      spec: sweepSpec(rows, 'lambda', 'lambda', { type: 'symlog' }) },
    { id: 'fig-layers', caption: 'Layer index: ACC and ASR after defense vs L (layers).', note: 'no rows with a numeric layers setting',
      spec: sweepSpec(rows, 'layers', 'L (layers)', { zero: false }, { format: 'd', tickMinStep: 1 }) },
    { id: 'fig-standings', note: 'no rows with ASR and clean->target', spec: standingsSpec(rows),
      caption: 'Per defense and setting, best mean (ACC - ASR) first: excess ASR (symlog axis) and ACC drop. Black tick and bar: mean over every model it ran on ± one sample std; colored points: the mean over seeds of each attack setting.' },
    {
      id: 'fig-datasets', caption: 'Per-dataset averages: mean ACC and ASR after defense over attacks, per defense.', note: 'no rows',
      spec: main.length === 0 ? null : {
        data: { values: metrics(main, (r) => ({ dataset: r.dataset, defense: r.defense })) },
        facet: { column: { field: 'dataset', type: 'nominal', title: null } },
        spec: {
          width: { step: 16 }, height: 200, mark: 'bar',
          encoding: {
            x: { field: 'defense', type: 'nominal', title: 'defense', axis: { labelLimit: 300 } }, xOffset: { field: 'metric' },
            y: { aggregate: 'mean', field: 'value', type: 'quantitative', ...pctAxis('mean after defense') },
            color: { field: 'metric', type: 'nominal', title: null },
          },
        },
      },
    },
  ];
  const out: Figure[] = [];
  for (const s of specs)
    out.push(s.spec ? { id: s.id, caption: s.caption, svg: await render(s.spec) }
      : { id: s.id, caption: s.caption, svg: null, note: `skipped: ${s.note}` });
  return out;
}
