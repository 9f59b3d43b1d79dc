// The HTML report's run-based parts on a real (tiny) experiment: the pooled table over two seeds,
// trigger previews decoded back from their data URIs, VarDefense's score and threshold figures, the
// test-set lock, and the page rendered to pixels in headless Chromium when one is installed.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';
import { collectRows } from '../../src/report/summary';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { withoutTestSet } from '../../src/data/test-set-lock';
import type { LayerReport } from '../../src/defenses/vardefense';
import { parseExperiment } from '../../src/experiments/config';
import { runExperiment } from '../../src/experiments/runner';
import { aggregateRows } from '../../src/report/aggregate';
import { writeHtmlReport } from '../../src/report/html';
import { triggerPreviews } from '../../src/report/previews';
import { varDefenseSpec } from '../../src/report/vardefense-plots';
import { readDefendRecord } from '../../src/report/run-details';
import { tmpDir } from '../helpers';

const GRID = `
name: tiny-report
datasets: [mnist]
model: { name: small-cnn }
train: { epochs: 1, batchSize: 64 }
seeds: [1, 2]
verdict: false
attacks:
  - { name: patch3, attack: patch, triggerSize: 3, pattern: checkerboard, target: 0 }
defenses:
  - { method: ft, set: { epochs: 1 } }
  - { method: vardefense, preset: paper, set: { epochs: 1, layers: 2 } }
`;

const root = tmpDir('report-extras');
const data = path.join(root, 'data');
let experiment: string | null = null;
/** The experiment's cells folder, run once for all tests here. */
function cells(): string {
  if (experiment) return experiment;
  writeSyntheticIdx(path.join(data, 'mnist'), { train: 1200, test: 100 });
  runExperiment(parseExperiment(GRID, 'grid.yaml'), path.join(root, 'out'), { dataDir: data });
  return (experiment = path.join(root, 'out', 'cells'));
}

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((f) => fs.existsSync(f));

test('two seeds pool into one row per defense with n = 2', () => {
  const rows = collectRows([cells()]);
  assert.equal(rows.length, 4);
  assert.deepEqual(rows.map((r) => r.seed).sort(), [1, 1, 2, 2]);
  assert.equal(new Set(rows.map((r) => r.condition)).size, 1, 'the seeds are the only difference');
  const agg = aggregateRows(rows);
  assert.deepEqual(agg.map((a) => [a.defense, a.n]).sort(), [['ft', 2], ['vardefense:paper', 2]]);
  const ft = rows.filter((r) => r.defense === 'ft');
  const a = agg.find((x) => x.defense === 'ft')!;
  assert.ok(Math.abs(a.accAfter.mean - (ft[0].accAfter + ft[1].accAfter) / 2) < 1e-12);
  assert.ok(Math.abs(a.accAfter.std! - Math.abs(ft[0].accAfter - ft[1].accAfter) / Math.SQRT2) < 1e-12);
});

test('trigger preview: clean and triggered rows differ exactly in the 3x3 checkerboard at the corner', () => {
  const rows = collectRows([cells()]);
  const [p] = triggerPreviews(rows, { dataDir: data, count: 4 });
  assert.ok(p.png?.startsWith('data:image/png;base64,'), JSON.stringify(p).slice(0, 200));
  const png = PNG.sync.read(Buffer.from(p.png!.split(',')[1], 'base64'));
  const scale = 3, gap = 2, side = 28 * scale, cellW = side + gap;
  assert.deepEqual([png.width, png.height], [4 * cellW + gap, 2 * (side + gap) + gap]);
  const at = (x: number, y: number): number => png.data[(y * png.width + x) * 4];
  for (let i = 0; i < 4; i++) {
    let inside = 0, outside = 0;
    for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) {
      const top = at(gap + i * cellW + x, gap + y), bottom = at(gap + i * cellW + x, 2 * gap + side + y);
      const inPatch = x >= side - 3 * scale && y >= side - 3 * scale;
      if (inPatch) {
        const [px, py] = [Math.floor(x / scale) - 25, Math.floor(y / scale) - 25];
        assert.equal(bottom, (px + py) % 2 === 0 ? 255 : 0, `image ${i}: the checkerboard at (${px}, ${py})`);
        if (top !== bottom) inside++;
      } else if (top !== bottom) outside++;
    }
    assert.equal(outside, 0, `image ${i}: pixels changed outside the patch`);
    assert.ok(inside > 0, `image ${i}: the trigger changed nothing`);
  }
  assert.throws(() => withoutTestSet(() => triggerPreviews(rows, { dataDir: data })), /the HTML report's trigger previews: refused inside a defense/);
});

test("VarDefense figure: one tick per channel, the selected ones marked, from the run's report", async () => {
  const rows = collectRows([cells()]);
  const file = path.join(root, 'report.html');
  await writeHtmlReport(rows, file, { dataDir: data });
  const html = fs.readFileSync(file, 'utf8');
  assert.match(html, /<h2>Over seeds<\/h2>/);
  assert.equal((html.match(/<img alt="clean and triggered/g) ?? []).length, 1, 'one attack, one preview');
  assert.doesNotMatch(html, /<script|<link|(src|href)=["']?https?:/i);
  const vd = rows.filter((r) => r.defense === 'vardefense:paper').sort((a, b) => a.seed! - b.seed!)[0];
  const perLayer = (readDefendRecord(vd.dir)!.report as { perLayer: LayerReport[] }).perLayer;
  const svg = /<figure id="fig-vd-1"[\s\S]*?<\/figure>/.exec(html)?.[0] ?? '';
  assert.match(svg, /seed 1/, 'the lowest seed is shown');
  assert.equal((html.match(/<figure id="fig-vd-/g) ?? []).length, 1, 'one figure per VarDefense setting, not per seed');
  const channels = perLayer.reduce((s, l) => s + l.channels, 0), selected = perLayer.reduce((s, l) => s + l.selected.length, 0);
  assert.ok(selected > 0 && selected < channels);
  assert.equal((svg.match(/aria-label="[^"]*channels: selected/g) ?? []).length, selected);
  assert.equal((svg.match(/aria-label="[^"]*channels: kept/g) ?? []).length, channels - selected);
  assert.match(svg, />threshold \(score\)<\/text>/);
});

test('varDefenseSpec: empty selections (NaN thresholds) are dropped, zero scores give a linear axis, no layers no figure', () => {
  const layer = (o: Partial<LayerReport>): LayerReport => ({ name: 'l', channels: 3, selected: [0], scoresBefore: [0.1, 1, 2], scoresAfter: [0.1, 1, 2],
    distribution: [], thresholdValues: [NaN, 0.1, 0.1], ...o });
  const spec = JSON.stringify(varDefenseSpec([layer({}), layer({ name: 'm', scoresBefore: [0, 1, 2] })], 't'));
  assert.doesNotMatch(spec, /"type":"log"/);
  assert.doesNotMatch(spec, /"threshold":null/, 'NaN serialises as null: none left');
  assert.equal((spec.match(/"step":\d+,"threshold"/g) ?? []).length, 4, 'steps 2 and 3 of two layers');
  assert.match(JSON.stringify(varDefenseSpec([layer({})], 't')), /"type":"log"/);
  assert.equal(varDefenseSpec([], 't'), null);
});

test('the generated report as a screenshot in headless Chromium: non-blank, with the preview and the selected channels drawn', async (t) => {
  if (!CHROMIUM) {
    t.skip('no chromium, chromium-browser or google-chrome in /usr/bin (Debian package chromium; scripts/setup.sh installs it): screenshot not checked');
    return;
  }
  const file = path.join(root, 'shot.html');
  await writeHtmlReport(collectRows([cells()]), file, { dataDir: data });
  const shot = path.join(root, 'shot.png');
  execFileSync(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${path.join(root, 'profile')}`, '--window-size=1300,3600',
    `--screenshot=${shot}`, `file://${file}`], { stdio: 'ignore', timeout: 120_000 });
  const png = PNG.sync.read(fs.readFileSync(shot));
  assert.deepEqual([png.width, png.height], [1300, 3600]);
  let red = 0, goal = 0, dark = 0;
  const colors = new Set<number>();
  for (let i = 0; i < png.data.length; i += 4) {
    const [r, g, b] = [png.data[i], png.data[i + 1], png.data[i + 2]];
    colors.add((r << 16) | (g << 8) | b);
    if (Math.abs(r - 0xd6) < 20 && Math.abs(g - 0x27) < 25 && Math.abs(b - 0x28) < 25) red++; // selected channels
    if (g > r + 15 && g > b + 15 && g > 200) goal++; // the goal region's light green
    if (r + g + b < 60) dark++;
  }
  assert.ok(colors.size > 50, `only ${colors.size} colours: a blank page?`);
  assert.ok(red > 30, `${red} pixels in the selected channels' red`);
  assert.ok(goal > 200, `${goal} pixels of the goal region`);
  assert.ok(dark > 1000, `${dark} dark pixels: text and preview images`);
});
