// Pooling runs over seeds: means and sample stds against a direct computation, n = 1, and groups that
// never mix datasets, attacks, defenses, settings or training conditions.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { SummaryRow } from '../../src/report/summary';
import { aggregateByDefense, aggregateByDefenseMarkdown, aggregateCsv, aggregateMarkdown, aggregatePivot, aggregatePivotMarkdown, aggregateRows, hasSeedRepeats, stat } from '../../src/report/aggregate';
import { conditionOf } from '../../src/report/condition';
import { htmlPage, htmlPivot } from '../../src/report/html';
import { DEFAULT_TRAIN, TrainConfig } from '../../src/train/run';
import { Rng } from '../../src/util/rng';

function row(o: Partial<SummaryRow>): SummaryRow {
  return { dataset: 'fashion-mnist', model: 'resnet18 w16', attack: '3x3 white patch', defense: 'vardefense:paper', settings: '', accBefore: 0.92,
    accAfter: 0.9, asrBefore: 0.99, asrAfter: 0.05, raAfter: 0.8, floorAfter: 0.01, seconds: 100, costVsFt: null, dir: '/x', seed: 1, condition: 'c1', ...o };
}

// the textbook two-pass formulas, written out independently of stat()
const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
const sampleStd = (v: number[]): number => Math.sqrt(v.map((x) => (x - mean(v)) ** 2).reduce((a, b) => a + b, 0) / (v.length - 1));

test('stat: mean and sample std (n - 1); std null for one value, null for none', () => {
  assert.deepEqual(stat([2, 4, 4, 4, 5, 5, 7, 9]), { mean: 5, std: Math.sqrt(32 / 7) });
  assert.deepEqual(stat([0.3]), { mean: 0.3, std: null });
  assert.equal(stat([]), null);
});

test('aggregateRows: random runs over seeds match a direct computation per group, excess ASR per run', () => {
  const rng = new Rng(7);
  const rows: SummaryRow[] = [];
  const seeds = [1, 2, 3, 4, 5];
  for (const defense of ['ft', 'vardefense:paper']) for (const settings of ['', 'lambda=0.1']) for (const seed of seeds)
    rows.push(row({ defense, settings, seed, accBefore: 0.9 + rng.next() / 20, accAfter: 0.85 + rng.next() / 10, asrAfter: rng.next() / 2,
      floorAfter: rng.next() / 50, seconds: 50 + 100 * rng.next() }));
  const agg = aggregateRows(rows);
  assert.equal(agg.length, 4, 'two defenses x two settings');
  for (const a of agg) {
    const g = rows.filter((r) => r.defense === a.defense && r.settings === a.settings);
    assert.equal(a.n, 5);
    assert.deepEqual(a.seeds, seeds);
    const check = (got: { mean: number; std: number | null } | null, v: number[], what: string): void => {
      assert.ok(got && Math.abs(got.mean - mean(v)) < 1e-12 && Math.abs(got.std! - sampleStd(v)) < 1e-12, `${a.defense} ${a.settings} ${what}: ${JSON.stringify(got)}`);
    };
    check(a.accBefore, g.map((r) => r.accBefore), 'accBefore');
    check(a.accAfter, g.map((r) => r.accAfter), 'accAfter');
    check(a.asrAfter, g.map((r) => r.asrAfter!), 'asrAfter');
    check(a.floorAfter, g.map((r) => r.floorAfter!), 'floorAfter');
    check(a.excessAsr, g.map((r) => r.asrAfter! - r.floorAfter!), 'excessAsr');
    check(a.seconds, g.map((r) => r.seconds), 'seconds');
    // the std of the differences is not the difference of stds
    assert.ok(Math.abs(a.excessAsr!.std! - (a.asrAfter!.std! - a.floorAfter!.std!)) > 1e-6);
  }
});

test('aggregateRows: n = 1 shows "-" for the std; a clean model has no ASR stats', () => {
  const [a] = aggregateRows([row({ accAfter: 0.9123 })]);
  assert.equal(a.n, 1);
  assert.equal(a.accAfter.std, null);
  const md = aggregateMarkdown([a]).split('\n');
  assert.equal(md.length, 3);
  assert.match(md[2], /\| 1 \| 92\.00 ± - \| 91\.23 ± - \|/);
  const [clean] = aggregateRows([row({ attack: 'none', asrBefore: null, asrAfter: null, floorAfter: null })]);
  assert.equal(clean.asrAfter, null);
  assert.equal(clean.excessAsr, null);
  assert.match(aggregateMarkdown([clean]), /\| - \| - \| - \| - \|/);
  assert.equal(hasSeedRepeats([row({})]), false);
  assert.equal(hasSeedRepeats([row({ seed: 1 }), row({ seed: 2 })]), true);
});

test('aggregateRows never pools different datasets, models, attacks, defenses, settings or conditions', () => {
  const base: Partial<SummaryRow>[] = [{}, { dataset: 'mnist' }, { model: 'small-cnn' }, { attack: 'blended noise, alpha 0.2' }, { defense: 'ft' },
    { settings: 'lambda=1' }, { settings: 'lambda=1 layers=2' }, { condition: 'c2' }];
  const rows = base.flatMap((o) => [1, 2].map((seed) => row({ ...o, seed, accAfter: 0.5 + seed / 10 })));
  const agg = aggregateRows(rows);
  assert.equal(agg.length, base.length);
  for (const a of agg) assert.deepEqual([a.n, a.seeds], [2, [1, 2]]);
  // seeds are not options: a defense's seed option and WaNet's field seed do not split a group
  const wanet = (seed: number): string => `WaNet warp, k 4, s 0.5, grid rescale 1, cross ratio 2, field seed ${seed}`;
  const seeded = aggregateRows([1, 2, 3].map((seed) => row({ seed, attack: wanet(seed), settings: `lambda=1 seed=${seed}` })));
  assert.equal(seeded.length, 1);
  assert.deepEqual([seeded[0].n, seeded[0].settings, seeded[0].attack], [3, 'lambda=1', 'WaNet warp, k 4, s 0.5, grid rescale 1, cross ratio 2']);
});

test('conditionOf ignores the seeds and nothing else', () => {
  const cfg = (o: Partial<TrainConfig>, seed: number): TrainConfig => ({
    ...DEFAULT_TRAIN, dataset: 'fashion-mnist', model: 'resnet18', width: 16, seed,
    attack: { trigger: { kind: 'patch', size: 3, pattern: 'random', position: 'fixed', seed }, poisonRatio: 0.05, target: 0, mode: 'all-to-one', seed }, ...o,
  });
  assert.equal(conditionOf(cfg({}, 1)), conditionOf(cfg({}, 2)));
  const other = cfg({}, 1);
  other.attack!.poisonRatio = 0.1;
  assert.notEqual(conditionOf(other), conditionOf(cfg({}, 1)));
  assert.notEqual(conditionOf(cfg({ epochs: 3 }, 1)), conditionOf(cfg({}, 1)));
  assert.notEqual(conditionOf(cfg({ attack: null }, 1)), conditionOf(cfg({}, 1)));
  const bigger = cfg({}, 1);
  (bigger.attack!.trigger as { size: number }).size = 4;
  assert.notEqual(conditionOf(bigger), conditionOf(cfg({}, 1)));
  const reordered = Object.fromEntries(Object.entries(cfg({}, 2)).reverse()) as unknown as TrainConfig;
  assert.equal(conditionOf(reordered), conditionOf(cfg({}, 1)), 'key order does not matter');
});

test('aggregate formats: pivot one line per attack with n, CSV means and stds, HTML table only with repeats', () => {
  const rows = [1, 2, 3].flatMap((seed) => [row({ seed, defense: 'ft', accAfter: 0.88 + seed / 100 }), row({ seed, attack: 'blended noise, alpha 0.2' })]);
  const agg = aggregateRows(rows);
  const { head, lines } = aggregatePivot(agg);
  assert.deepEqual(head, ['dataset', 'model', 'attack', 'n', 'no defense', 'ft', 'vardefense:paper']);
  assert.equal(lines.length, 2);
  assert.deepEqual(lines[0].slice(3, 6), ['3', '92.00 ± 0.00 / 99.00 ± 0.00', '90.00 ± 1.00 / 5.00 ± 0.00']);
  const md = aggregatePivotMarkdown(agg);
  assert.match(md, /^ACC \/ ASR after[\s\S]*\| 90\.00 ± 1\.00 \/ 5\.00 ± 0\.00 \|[\s\S]*\nexcess ASR after[\s\S]*\| 4\.00 ± 0\.00 \|/, 'ACC / ASR, then excess ASR');
  const by = aggregateByDefense(agg);
  assert.deepEqual(by.head, ['defense', '3x3 white patch (n 3)', 'blended noise, alpha 0.2 (n 3)']);
  assert.deepEqual(by.lines.map((l) => l[0]), ['no defense', 'ft', 'vardefense:paper']);
  assert.deepEqual(by.lines[1], ['ft', '90.00 ± 1.00 / 5.00 ± 0.00', ''], 'the transpose of the pivot: ft ran on the patch only');
  assert.equal(by.lines[2][2], lines[1][6]);
  assert.match(aggregateByDefenseMarkdown(agg), /\nexcess ASR after[\s\S]*\| ft \| 4\.00 ± 0\.00 \|  \|/);
  // the undefended entry is ACC / ASR in both tables: the excess table labels it so
  assert.match(aggregateByDefenseMarkdown(agg), /^ACC \/ ASR after[\s\S]*\n\| no defense \| 92\.00[\s\S]*\nexcess ASR after[\s\S]*\n\| no defense \(ACC \/ ASR\) \| 92\.00 ± 0\.00 \/ 99\.00/);
  assert.match(md, /\nexcess ASR after[\s\S]*\| n \| no defense \(ACC \/ ASR\) \| ft \|/);
  const csv = aggregateCsv(agg).split('\n');
  assert.equal(csv.length, 1 + 2);
  const cols = csv[0].split(',');
  const ft = csv[1].split(',');
  assert.equal(Number(ft[cols.indexOf('accAfterMean')]), 0.9);
  assert.ok(Math.abs(Number(ft[cols.indexOf('accAfterStd')]) - 0.01) < 1e-12);
  assert.equal(ft[cols.indexOf('seeds')], '1;2;3');
  const page = htmlPage(rows, []);
  assert.match(page, /<table class="vd-aggregate">/);
  assert.match(page, /<table class="vd-standings">[\s\S]*?<td>vardefense:paper<\/td><td>3<\/td><td>2\.00 ± 0\.00<\/td>/, 'standings with repeats');
  assert.match(page, /<table class="vd-pivot">[\s\S]*?<td>90\.00 ± 1\.00 \/ 5\.00 ± 0\.00<\/td>/, 'the pivot pools the seeds too');
  assert.doesNotMatch(htmlPage(rows.filter((r) => r.seed === 1), []), /vd-aggregate"|vd-standings"/);
  // more defenses than attacks: a line per defense
  const wide = [1, 2].flatMap((seed) => ['ft', 'nad', 'clp'].map((defense) => row({ seed, defense })));
  assert.match(htmlPivot(wide), /<table class="vd-pivot">\n<thead><tr><th>defense<\/th><th>3x3 white patch \(n 2\)<\/th><\/tr>/);
  assert.match(htmlPivot(rows), /<thead><tr><th>dataset<\/th>/, 'as many defenses as attacks: the paper\'s layout');
});
