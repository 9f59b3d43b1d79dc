// `vardefense report --html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched)
// with the summary table and the figures.
import { pivotTable, SummaryRow } from './summary';
import { pct } from '../util/format';
import { writeFileAtomic } from '../util/atomic';
import { buildFigures, Figure } from './plots';
import { TriggerPreview, triggerPreviews } from './previews';
import { varDefenseFigures } from './vardefense-plots';
import { AGGREGATE_COLUMNS, aggregateByDefense, aggregatePivot, aggregateRows, hasSeedRepeats } from './aggregate';
import { standings, standingsTable } from './compare';

export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const COLUMNS: [string, (r: SummaryRow) => string][] = [
  ['dataset', (r) => r.dataset], ['model', (r) => r.model], ['attack', (r) => r.attack], ['defense', (r) => r.defense],
  ['settings', (r) => r.settings], ['ACC before', (r) => pct(r.accBefore)], ['ACC after', (r) => pct(r.accAfter)],
  ['ASR before', (r) => pct(r.asrBefore)], ['ASR after', (r) => pct(r.asrAfter)], ['clean->target after', (r) => pct(r.floorAfter)],
  ['time (s)', (r) => r.seconds.toFixed(0)], ['time / FT', (r) => (r.costVsFt === null ? '-' : r.costVsFt.toFixed(2))],
];

/** The same columns as the Markdown table. */
export function htmlTable(rows: SummaryRow[]): string {
  const head = COLUMNS.map(([h]) => `<th>${esc(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${COLUMNS.map(([, f]) => `<td>${esc(f(r))}</td>`).join('')}</tr>`).join('\n');
  return `<table class="vd-summary">\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

/**
 * The paper's layout: ACC / ASR after, one line per attack, one column per defense; pooled over seeds
 * when they repeat (a per-run pivot would show one seed's numbers), and then turned to a line per
 * defense when defenses outnumber attacks (a grid of twenty defenses does not fit across a page).
 */
export function htmlPivot(rows: SummaryRow[]): string {
  const pooled = hasSeedRepeats(rows) ? aggregateRows(rows) : null;
  const many = (f: (r: SummaryRow) => string): number => new Set(rows.map(f)).size;
  const { head, lines } = !pooled ? pivotTable(rows)
    : many((r) => `${r.defense} ${r.settings}`) > many((r) => `${r.dataset} ${r.model} ${r.attack}`) ? aggregateByDefense(pooled) : aggregatePivot(pooled);
  return `<table class="vd-pivot">\n<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>\n<tbody>\n` +
    `${lines.map((l) => `<tr>${l.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n')}\n</tbody>\n</table>`;
}

/** Runs that differ only in seed pooled: n, mean ± sample std (percentage points). */
export function htmlAggregate(rows: SummaryRow[]): string {
  const head = AGGREGATE_COLUMNS.map(([h]) => `<th>${esc(h)}</th>`).join('');
  const body = aggregateRows(rows).map((a) => `<tr>${AGGREGATE_COLUMNS.map(([, f]) => `<td>${esc(f(a))}</td>`).join('')}</tr>`).join('\n');
  return `<table class="vd-aggregate">\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

/** One line per defense over all its models (report/compare.ts). */
export function htmlStandings(rows: SummaryRow[]): string {
  const { head, lines } = standingsTable(standings(rows));
  return `<table class="vd-standings">\n<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>\n<tbody>\n` +
    `${lines.map((l) => `<tr>${l.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n')}\n</tbody>\n</table>`;
}

function figureHtml(f: Figure): string {
  const content = f.svg === null ? `<p class="vd-skipped">${esc(f.note ?? 'skipped')}</p>`
    : f.svg.replace(/^<svg /, `<svg id="${f.id}-svg" `);
  return `<figure id="${f.id}" class="vd-figure">\n${content}\n<figcaption>${esc(f.caption)}</figcaption>\n</figure>`;
}

function previewsHtml(previews: TriggerPreview[]): string {
  return `<div class="vd-previews">\n${previews.map((p) => `<div class="vd-preview"><div class="vd-preview-title">${esc(p.attack)} · ${esc(p.dataset)}</div>\n${
    p.png ? `<img alt="clean and triggered test images: ${esc(p.attack)}" src="${p.png}">` : `<p class="vd-skipped">${esc(p.note ?? 'no preview')}</p>`}</div>`).join('\n')}\n</div>`;
}

/** What the page shows beyond the tables and the figures; each section is left out when empty. */
export interface ReportExtras { previews?: TriggerPreview[]; varDefense?: Figure[] }

const CSS = `body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}.vd-summary td:nth-child(-n+5),.vd-pivot td:nth-child(-n+3),.vd-aggregate td:nth-child(-n+5),.vd-standings td:first-child{text-align:left}
figure{margin:2em 0}.vd-previews{display:flex;flex-wrap:wrap;gap:1.5em}.vd-preview-title{font-size:13px;margin-bottom:.3em}
.vd-preview img{image-rendering:pixelated;border:1px solid #ddd}figcaption{font-size:14px;color:#444;margin-top:.5em}.vd-skipped{color:#888;font-style:italic}`;

export function htmlPage(rows: SummaryRow[], figures: Figure[], extras: ReportExtras = {}): string {
  const repeats = hasSeedRepeats(rows);
  const previews = extras.previews?.length ? `<h2>Triggers</h2>\n<p>Test images outside the target class: clean (top row) and with the attack's trigger (bottom row).</p>\n${previewsHtml(extras.previews)}\n` : '';
  const vd = extras.varDefense?.length ? `<h2>VarDefense: channel scores and thresholds</h2>\n${extras.varDefense.map(figureHtml).join('\n')}\n` : '';
  // the short tables and the figures first; the long per-run tables last
  const standingsSection = repeats ? `<h2>Standings over all models</h2>\n<p>One line per defense over every model it ran on, best mean (ACC - ASR) first; settings at goal: attack settings whose means over seeds reach a patch at excess ASR &le; 0.5 pt and a blend at ASR &le; 5%, with at most 1 (patch) or 1.5 (blend) points of accuracy lost. Paired comparisons: <code>vardefense report DIR --compare DEFENSE</code>.</p>\n${htmlStandings(rows)}\n` : '';
  const overSeeds = repeats ? `<h2>Over seeds</h2>\n<p>Runs that differ only in their seeds, pooled: n runs, mean ± sample standard deviation (percentage points; '-' for a single run). Excess ASR = ASR after - clean->target after, per run.</p>\n${htmlAggregate(rows)}\n` : '';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vardefense report</title><style>${CSS}</style></head>
<body>
<h1>vardefense report</h1>
<p>${rows.length} defense runs. Generated ${esc(new Date().toISOString())}.</p>
<h2>ACC / ASR after each defense${repeats ? ' (%, mean ± std over seeds)' : ''}</h2>
${htmlPivot(rows)}
${standingsSection}<h2>Figures</h2>
${figures.map(figureHtml).join('\n')}
${previews}${vd}${overSeeds}<h2>All results</h2>
${htmlTable(rows)}
</body></html>
`;
}

/** The page for these rows; previews and VarDefense figures come from the runs' report.json (where readable) and the test set under dataDir. */
export async function writeHtmlReport(rows: SummaryRow[], file: string, o: { dataDir?: string } = {}): Promise<void> {
  const extras: ReportExtras = { previews: triggerPreviews(rows, o), varDefense: await varDefenseFigures(rows) };
  writeFileAtomic(file, htmlPage(rows, await buildFigures(rows), extras));
}
