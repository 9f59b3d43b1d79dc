// VarDefense's own figures in the HTML report, from its report.json: each purified layer's channel
// scores (the selected channels marked, the last step's threshold as a rule) and the threshold's
// value over the steps.
import type { SummaryRow } from './summary';
import type { LayerReport } from '../defenses/vardefense';
import { Figure, render } from './plots';
import { readDefendRecord } from './run-details';

/** The fields of VarDefenseReport read here (older reports may lack some). */
interface VarDefenseDetails { perLayer?: LayerReport[]; thresholds?: number[] }

const finite = (v: number): boolean => typeof v === 'number' && Number.isFinite(v);

/** Vega-Lite spec of one run's two panels, or null when the report has no per-layer data. */
export function varDefenseSpec(perLayer: LayerReport[], title: string): object | null {
  const layers = perLayer.filter((l) => l.scoresBefore?.length);
  if (layers.length === 0) return null;
  const order = layers.map((l) => l.name);
  const points = layers.flatMap((l) => {
    const sel = new Set(l.selected);
    return l.scoresBefore.map((score, channel) => ({ layer: l.name, channel, score, channels: sel.has(channel) ? 'selected' : 'kept' }));
  }).filter((p) => finite(p.score));
  const last = layers.map((l) => ({ layer: l.name, threshold: l.thresholdValues?.filter(finite).at(-1) })).filter((t) => t.threshold !== undefined);
  const steps = layers.flatMap((l) => (l.thresholdValues ?? []).map((threshold, step) => ({ layer: l.name, step: step + 1, threshold })).filter((p) => finite(p.threshold)));
  const positive = points.every((p) => p.score > 0) && last.every((t) => t.threshold! > 0) && steps.every((s) => s.threshold > 0);
  const scoreScale = positive ? { type: 'log' } : { zero: false };
  const y = { field: 'layer', type: 'nominal', sort: order, title: 'layer' };
  const height = { step: 18 };
  return {
    title: { text: title, anchor: 'start', fontSize: 12 },
    hconcat: [
      {
        width: 300, height, layer: [
          { data: { values: points }, mark: { type: 'tick', thickness: 1.5, opacity: 0.7, size: 12 },
            encoding: { x: { field: 'score', type: 'quantitative', title: 'channel score at the start', scale: scoreScale }, y,
              color: { field: 'channels', type: 'nominal', title: null, scale: { domain: ['selected', 'kept'], range: ['#d62728', '#9aa7b4'] } },
              tooltip: [{ field: 'layer' }, { field: 'channel' }, { field: 'score', format: '.4g' }, { field: 'channels' }] } },
          { data: { values: last }, mark: { type: 'tick', color: '#000', thickness: 3, size: 18 },
            encoding: { x: { field: 'threshold', type: 'quantitative' }, y, tooltip: [{ field: 'layer' }, { field: 'threshold', format: '.4g', title: 'last threshold' }] } },
        ],
      },
      steps.length === 0 ? { width: 220, height: 60, mark: 'text', data: { values: [{ t: 'no threshold steps recorded' }] }, encoding: { text: { field: 't' } } } : {
        width: 220, height: 160, data: { values: steps }, mark: { type: 'line', point: steps.length <= 3 * layers.length },
        encoding: { x: { field: 'step', type: 'quantitative', title: 'step', axis: { tickMinStep: 1, format: 'd' } },
          y: { field: 'threshold', type: 'quantitative', title: 'threshold (score)', scale: scoreScale },
          color: { field: 'layer', type: 'nominal', sort: order, title: 'layer', scale: { scheme: 'tableau10' } } },
      },
    ],
    resolve: { scale: { color: 'independent' } },
  };
}

/**
 * One figure per VarDefense setting (lowest seed) of each dataset, model and attack, the preset's own
 * options first, at most `max` in all: a long sweep would repeat the same picture.
 */
export async function varDefenseFigures(rows: SummaryRow[], max = 6): Promise<Figure[]> {
  const seen = new Set<string>();
  const picked = [...rows].filter((r) => r.defense.split(':')[0] === 'vardefense')
    .sort((a, b) => Number(a.settings !== '') - Number(b.settings !== '') || (a.seed ?? 0) - (b.seed ?? 0))
    .filter((r) => { const k = [r.dataset, r.model, r.attack, r.defense, r.settings].join('\n'); if (seen.has(k)) return false; seen.add(k); return true; });
  const out: Figure[] = [];
  for (const r of picked) {
    if (out.length >= max) break;
    const details = readDefendRecord(r.dir)?.report as VarDefenseDetails | undefined;
    const title = `${r.defense}${r.settings ? ` (${r.settings})` : ''} · ${r.attack} · ${r.dataset} · ${r.model}${r.seed === undefined ? '' : ` · seed ${r.seed}`}`;
    const spec = details?.perLayer ? varDefenseSpec(details.perLayer, title) : null;
    if (!spec) continue;
    out.push({ id: `fig-vd-${out.length + 1}`, svg: await render(spec),
      caption: `${title}: left, each purified layer's channel scores at the start (red: the channels selected at the last step; black: the last step's threshold); right, the threshold's score value at each step.` });
  }
  return out;
}
