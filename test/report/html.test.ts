// The HTML report: one self-contained page with the table and SVG figures; opened in headless Chromium
// (Debian's /usr/bin/chromium) to check every figure rendered with a size and visible marks.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import { SummaryRow } from '../../src/report/summary';
import { writeHtmlReport } from '../../src/report/html';
import { settingValue } from '../../src/report/plots';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'vardefense-html-'));
const CHROMIUM = '/usr/bin/chromium';

function row(o: Partial<SummaryRow>): SummaryRow {
  return { dataset: 'fashion-mnist', model: 'resnet18 w16', attack: '3x3 white patch', defense: 'ft', settings: '', accBefore: 0.92, accAfter: 0.9,
    asrBefore: 0.99, asrAfter: 0.5, raAfter: 0.4, floorAfter: 0.02, seconds: 100, costVsFt: 1, dir: '/x', ...o };
}

function rows(): SummaryRow[] {
  const out: SummaryRow[] = [];
  for (const dataset of ['fashion-mnist', 'mnist'])
    for (const attack of ['3x3 white patch', 'blended noise'])
      for (const [i, defense] of ['ft', 'nad', 'vardefense:paper'].entries())
        out.push(row({ dataset, attack, defense, accAfter: 0.88 + i / 100, asrAfter: 0.9 - 0.4 * i }));
  for (const l of [0, 0.01, 0.1, 1, 10]) out.push(row({ defense: 'vardefense:paper', settings: `lambda=${l}`, accAfter: 0.9 - l / 100, asrAfter: 0.1 / (1 + l) }));
  out.push(row({ defense: 'vardefense:paper', settings: 'lambda="auto"' }));
  for (const l of [2, 4, 8]) out.push(row({ defense: 'vardefense:paper', settings: `layers=${l} epochs=1`, accAfter: 0.9 - l / 200, asrAfter: 0.2 / l }));
  return out;
}

const svgOf = (html: string, id: string): string => {
  const m = new RegExp(`<svg id="${id}-svg"[\\s\\S]*?</svg>\\s*<figcaption>`).exec(html);
  assert.ok(m, `no svg for ${id}`);
  return m[0];
};
const count = (s: string, re: RegExp): number => (s.match(re) ?? []).length;

test('settingValue reads numeric settings only', () => {
  assert.equal(settingValue('layers=4 lambda=0.1', 'lambda'), 0.1);
  assert.equal(settingValue('lambda="auto"', 'lambda'), null);
  assert.equal(settingValue('xlambda=3', 'lambda'), null);
});

test('html report: the table and five SVG figures with marks and axis titles, nothing external', async () => {
  const file = path.join(tmp(), 'sub', 'report.html');
  const rs = rows();
  await writeHtmlReport(rs, file);
  const html = fs.readFileSync(file, 'utf8');
  const all = html.slice(html.indexOf('<table class="vd-summary">'));
  assert.equal(count(all.slice(0, all.indexOf('</table>')), /<tr>/g), rs.length + 1, 'one line per run');
  assert.match(html, /<th>ASR after<\/th>/);
  const pivot = html.slice(html.indexOf('<table class="vd-pivot">'));
  assert.equal(count(pivot.slice(0, pivot.indexOf('</table>')), /<tr>/g), 4 + 1, 'one line per dataset and attack');
  assert.match(html, /<td>lambda=&#34;auto&#34;<\/td>/);
  assert.equal(count(html, /<figure /g), 5);
  assert.equal(count(html, /<svg /g), 5);
  const titles: Record<string, string[]> = { 'fig-acc-asr': ['ACC after', 'ASR after'], 'fig-lambda': ['lambda', 'after defense'],
    'fig-layers': ['L (layers)', 'after defense'], 'fig-standings': ['excess ASR (ASR - clean-&gt;target)', 'ACC drop'], 'fig-datasets': ['defense', 'mean after defense'] };
  for (const [id, ts] of Object.entries(titles)) {
    const svg = svgOf(html, id);
    assert.ok(count(svg, /<path /g) > 0, `${id}: no marks`);
    for (const t of ts) assert.ok(svg.includes(`>${t}</text>`), `${id}: no axis title ${t}`);
  }
  assert.ok(count(svgOf(html, 'fig-datasets'), /role-mark[^"]*"/g) > 0);
  // One lambda curve (5 numeric points) and one layers curve (3), each for ACC and ASR.
  assert.match(svgOf(html, 'fig-lambda'), /vardefense:paper · 3x3 white patch · fashion-mnist/);
  assert.doesNotMatch(html, /<script|<link|<img|(src|href)=["']?https?:/i);
});

test('html report: absent sweeps become notes, not figures', async () => {
  const file = path.join(tmp(), 'report.html');
  await writeHtmlReport(rows().filter((r) => r.settings === ''), file);
  const html = fs.readFileSync(file, 'utf8');
  assert.equal(count(html, /<svg /g), 3);
  assert.match(html, /<figure id="fig-lambda"[^>]*>\s*<p class="vd-skipped">skipped: no rows with a numeric lambda setting/);
  assert.match(html, /<figure id="fig-layers"[^>]*>\s*<p class="vd-skipped">skipped: no rows with a numeric layers setting/);
});

test('html report renders in headless Chromium: every figure has a size and visible marks', async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} not found (Debian package chromium; scripts/setup.sh installs it)`);
    return;
  }
  const dir = tmp();
  const file = path.join(dir, 'report.html');
  await writeHtmlReport(rows(), file);
  // A copy with a probe script: the report itself has none.
  const probe = `<script>const r=[...document.querySelectorAll('figure')].map(f=>{const s=f.querySelector('svg');if(!s)return{id:f.id,svg:false};
const b=s.getBoundingClientRect();const marks=[...s.querySelectorAll('.role-mark path,.role-mark rect')].filter(e=>{const x=e.getBBox();return x.width+x.height>0}).length;
return{id:f.id,svg:true,w:b.width,h:b.height,marks}});const p=document.createElement('pre');p.id='probe';p.textContent=JSON.stringify(r);document.body.append(p);</script>`;
  const probed = path.join(dir, 'probed.html');
  fs.writeFileSync(probed, fs.readFileSync(file, 'utf8').replace('</body>', `${probe}</body>`));
  const chrome = (...args: string[]): string => execFileSync(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${path.join(dir, 'profile')}`, ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  const dom = chrome('--dump-dom', `file://${probed}`);
  const m = /<pre id="probe">([^<]*)<\/pre>/.exec(dom);
  assert.ok(m, 'the probe did not run');
  const figs = JSON.parse(m[1].replace(/&quot;/g, '"')) as { id: string; svg: boolean; w: number; h: number; marks: number }[];
  assert.deepEqual(figs.map((f) => f.id), ['fig-acc-asr', 'fig-lambda', 'fig-layers', 'fig-standings', 'fig-datasets']);
  for (const f of figs) assert.ok(f.svg && f.w > 100 && f.h > 100 && f.marks > 0, `figure not rendered: ${JSON.stringify(f)}`);

  // And the unmodified page as pixels: not blank, and the charts' default blue is drawn.
  const shot = path.join(dir, 'shot.png');
  chrome('--window-size=1300,4000', `--screenshot=${shot}`, `file://${file}`);
  const png = PNG.sync.read(fs.readFileSync(shot));
  let blue = 0;
  for (let i = 0; i < png.data.length; i += 4)
    if (Math.abs(png.data[i] - 0x4c) < 12 && Math.abs(png.data[i + 1] - 0x78) < 12 && Math.abs(png.data[i + 2] - 0xa8) < 12) blue++;
  assert.ok(blue > 200, `only ${blue} chart-blue pixels in the screenshot`);
});

test("pivot table: one line per dataset and attack with the undefended numbers, one column per defense setting", async () => {
  const { pivotTable, pivotMarkdown } = await import('../../src/report/summary');
  const { head, lines } = pivotTable(rows());
  assert.deepEqual(head.slice(0, 7), ['dataset', 'model', 'attack', 'no defense', 'ft', 'nad', 'vardefense:paper']);
  assert.ok(head.includes('vardefense:paper (lambda=0.01)') && head.includes('vardefense:paper (layers=4 epochs=1)'));
  assert.equal(lines.length, 4, '2 datasets x 2 attacks');
  const mnistBlend = lines.find((l) => l[0] === 'mnist' && l[2] === 'blended noise')!;
  assert.deepEqual(mnistBlend.slice(3, 7), ['92.00% / 99.00%', '88.00% / 90.00%', '89.00% / 50.00%', '90.00% / 10.00%']);
  assert.equal(mnistBlend[head.indexOf('vardefense:paper (lambda=1)')], '', 'no sweep on that attack');
  assert.equal(pivotMarkdown(rows()).split('\n').length, 2 + 4);
});

test("a sweep's curve includes the preset's own run at the preset's value (it shows no setting)", async () => {
  const file = path.join(tmp(), 'report.html');
  const layers = [2, 8].map((l) => row({ defense: 'vardefense:bn-distill', settings: `layers=${l}` }));
  await writeHtmlReport([row({ defense: 'vardefense:bn-distill' }), row({ defense: 'ft' }), ...layers], file);
  const svg = svgOf(fs.readFileSync(file, 'utf8'), 'fig-layers');
  const xs = [...svg.matchAll(/aria-label="L \(layers\): (\d+);[^"]*metric: ACC after/g)].map((m) => Number(m[1]));
  assert.deepEqual([...new Set(xs)].sort((a, b) => a - b), [2, 8, 10], 'bn-distill purifies 10 layers by default');
});

test('standings figure: per defense the mean over all its models with ± one std, and one mean per attack setting, in standings order', async () => {
  const { standingsPoints } = await import('../../src/report/standings-figure');
  const rs = [
    row({ defense: 'ft', asrAfter: 0.5, floorAfter: 0.02 }), row({ defense: 'ft', asrAfter: 0.3, floorAfter: 0.02, seed: 2 }),
    row({ defense: 'ft', attack: 'blended noise', asrAfter: 0.9, floorAfter: 0.02, accAfter: 0.8 }),
    row({ defense: 'nad', asrAfter: 0.05, floorAfter: 0.02 }), row({ defense: 'nad', asrAfter: 0.03, floorAfter: 0.01, settings: 'lr=0.02' }),
    row({ defense: 'clean-only', asrAfter: null, floorAfter: null }),
  ];
  const p = standingsPoints(rs);
  assert.deepEqual(p.filter((x) => x.kind === 'all').map((x) => x.defense), ['nad (lr=0.02)', 'nad', 'ft'], 'best mean ACC - ASR first; no ASR, no point');
  const ft = p.find((x) => x.defense === 'ft' && x.kind === 'all')!;
  const e = [0.48, 0.28, 0.88];
  const mean = (e[0] + e[1] + e[2]) / 3;
  const sd = Math.sqrt(e.reduce((s, v) => s + (v - mean) ** 2, 0) / 2);
  assert.ok(Math.abs(ft.excess - mean) < 1e-12 && Math.abs(ft.excessHi! - (mean + sd)) < 1e-12 && Math.abs(ft.excessLo! - (mean - sd)) < 1e-12);
  assert.ok(Math.abs(ft.drop - (0.02 + 0.02 + 0.12) / 3) < 1e-12);
  const ftPatch = p.find((x) => x.defense === 'ft' && x.kind === 'setting' && x.attack === '3x3 white patch')!;
  assert.ok(Math.abs(ftPatch.excess - 0.38) < 1e-12, 'the patch setting pools its two seeds');
  assert.equal(p.filter((x) => x.defense === 'ft' && x.kind === 'setting').length, 2);
});
