// The standings as one picture: per defense, how much backdoor it left (excess ASR) and what it cost (ACC
// drop), over every model it ran on and per attack setting, so that a spread across settings is visible.
import { columnOf, excessOf, SummaryRow } from './summary';
import { standings } from './compare';
import { stat } from './aggregate';
import { percentScale } from './ticks';

const EXCESS_TICKS = [-0.05, -0.02, -0.01, 0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1];

interface Point { defense: string; kind: 'all' | 'setting'; attack: string; excess: number; drop: number; excessLo?: number; excessHi?: number; dropLo?: number; dropHi?: number }

/** Points per defense: one per attack setting (mean over seeds) and one over all its models with ± one sample std. */
export function standingsPoints(rows: SummaryRow[]): Point[] {
  const scored = rows.filter((r) => excessOf(r) !== null);
  const excess = (r: SummaryRow): number => excessOf(r)!;
  const drop = (r: SummaryRow): number => r.accBefore - r.accAfter;
  const out: Point[] = [];
  // the standings' own statistics over the scored rows: their order and each defense's mean ± std
  for (const { defense, excessAsr, accDrop: d } of standings(scored)) {
    const mine = scored.filter((r) => columnOf(r) === defense);
    const e = excessAsr!;
    out.push({ defense, kind: 'all', attack: 'all models', excess: e.mean, drop: d.mean,
      excessLo: e.mean - (e.std ?? 0), excessHi: e.mean + (e.std ?? 0), dropLo: d.mean - (d.std ?? 0), dropHi: d.mean + (d.std ?? 0) });
    for (const attack of new Set(mine.map((r) => r.attack))) {
      const g = mine.filter((r) => r.attack === attack);
      out.push({ defense, kind: 'setting', attack, excess: stat(g.map(excess))!.mean, drop: stat(g.map(drop))!.mean });
    }
  }
  return out;
}

/** Two panels sharing the defense axis (standings order): excess ASR on a symlog axis, ACC drop on a linear one. */
export function standingsSpec(rows: SummaryRow[]): object | null {
  const points = standingsPoints(rows);
  if (points.length === 0) return null;
  const order = points.filter((p) => p.kind === 'all').map((p) => p.defense);
  const yLabelled = { field: 'defense', type: 'nominal', sort: order, title: null, axis: { labelLimit: 480 } };
  const yBare = { ...yLabelled, axis: { labels: false, ticks: false, domain: false } };
  // the axes span the points; a bar of ± one std that reaches past them (skewed values near 0) is clipped
  const range = (k: 'excess' | 'drop'): [number, number] => {
    const v = points.map((p) => p[k]);
    return [Math.min(0, ...v), Math.max(...v)];
  };
  const [eLo, eHi] = range('excess');
  const excessLo = Math.min(0, EXCESS_TICKS.filter((t) => t <= eLo).pop() ?? eLo);
  const excessHi = EXCESS_TICKS.find((t) => t >= eHi) ?? eHi;
  const excessX = { type: 'quantitative', title: 'excess ASR (ASR - clean->target)',
    scale: { type: 'symlog', constant: 0.01, domain: [excessLo, excessHi], nice: false },
    axis: { values: EXCESS_TICKS.filter((t) => t >= excessLo && t <= excessHi), format: '.0%' } };
  const dropX = { type: 'quantitative', title: 'ACC drop', ...percentScale(...range('drop'), 5) };
  const panel = (k: 'excess' | 'drop', x: object, y: object): object => ({
    width: 260, height: { step: 16 },
    layer: [
      { transform: [{ filter: "datum.kind === 'all'" }], mark: { type: 'rule', color: '#333', clip: true },
        encoding: { y, x: { field: `${k}Lo`, ...x }, x2: { field: `${k}Hi` } } },
      { transform: [{ filter: "datum.kind === 'setting'" }], mark: { type: 'point', filled: true, size: 28, opacity: 0.75 },
        encoding: { y, x: { field: k, ...x }, color: { field: 'attack', type: 'nominal', title: 'attack (mean over seeds)', legend: { labelLimit: 300, titleLimit: 300 } },
          tooltip: [{ field: 'defense' }, { field: 'attack' }, { field: k, format: '.2%' }] } },
      { transform: [{ filter: "datum.kind === 'all'" }], mark: { type: 'tick', color: 'black', thickness: 2, size: 12 },
        encoding: { y, x: { field: k, ...x }, tooltip: [{ field: 'defense' }, { field: k, format: '.2%' }] } },
    ],
  });
  return { data: { values: points }, hconcat: [panel('excess', excessX, yLabelled), panel('drop', dropX, yBare)], spacing: 24 };
}
