// Defenses judged on the same models: the sign test against binomial sums written out, pairs that never
// cross models, differences and standings against a direct computation, and the protocol's goal.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { columnOf, SummaryRow } from '../../src/report/summary';
import { compareWith, comparisonText, meetsGoal, signTestP, standings, standingsText } from '../../src/report/compare';
import { Rng } from '../../src/util/rng';

function row(o: Partial<SummaryRow>): SummaryRow {
  return { dataset: 'fashion-mnist', model: 'resnet18 w16', attack: '3x3 random patch, fixed position', defense: 'vardefense:bn-distill', settings: '',
    accBefore: 0.92, accAfter: 0.9, asrBefore: 0.99, asrAfter: 0.05, raAfter: 0.8, floorAfter: 0.01, seconds: 100, costVsFt: null, dir: '/x', seed: 1,
    condition: 'c1', ...o };
}

const choose = (n: number, k: number): number => { let c = 1; for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i; return c; };

test('signTestP: two-sided exact binomial tail', () => {
  assert.equal(signTestP(10, 0), 2 / 1024);
  assert.equal(signTestP(1, 9), (2 * (1 + 10)) / 1024);
  assert.equal(signTestP(9, 1), signTestP(1, 9), 'symmetric');
  assert.equal(signTestP(5, 5), 1, 'capped at 1');
  assert.equal(signTestP(0, 0), 1);
  for (const [w, l] of [[17, 4], [3, 18], [12, 9], [21, 0]]) {
    const n = w + l;
    let tail = 0;
    for (let i = 0; i <= Math.min(w, l); i++) tail += choose(n, i);
    assert.ok(Math.abs(signTestP(w, l) - Math.min(1, (2 * tail) / 2 ** n)) < 1e-15, `${w}/${l}`);
  }
  assert.ok(signTestP(17, 4) < 0.01 && signTestP(12, 9) > 0.5);
});

test('compareWith: differences per model, never across models; wins, losses and ties', () => {
  const rng = new Rng(3);
  const rows: SummaryRow[] = [];
  const expected: number[] = [];
  const accDiffs: number[] = [];
  for (const attack of ['3x3 random patch, fixed position', 'blended noise, alpha 0.2']) for (const seed of [2, 3, 4]) {
    const accBefore = 0.9 + rng.next() / 20;
    const b = row({ attack, seed, accBefore, accAfter: accBefore - 0.02, asrAfter: rng.next() / 10, floorAfter: 0.01 });
    const o = row({ attack, seed, accBefore, defense: 'ft', accAfter: accBefore - rng.next() / 50, asrAfter: rng.next(), floorAfter: 0.02 });
    rows.push(b, o);
    expected.push((o.asrAfter! - o.floorAfter!) - (b.asrAfter! - b.floorAfter!));
    accDiffs.push(o.accAfter - b.accAfter);
  }
  // a run of the other defense on a model the base never saw, and one on another condition: not paired
  rows.push(row({ defense: 'ft', seed: 5, asrAfter: 0 }), row({ defense: 'ft', seed: 2, condition: 'c2', asrAfter: 0 }));
  const [c] = compareWith(rows, 'vardefense:bn-distill');
  assert.equal(c.other, 'ft');
  assert.equal(c.pairs, 6);
  const mean = expected.reduce((a, v) => a + v, 0) / 6;
  assert.ok(Math.abs(c.excessDiff!.mean - mean) < 1e-12);
  assert.ok(Math.abs(c.accDiff!.mean - accDiffs.reduce((a, v) => a + v, 0) / 6) < 1e-12);
  assert.equal(c.baseBetter + c.otherBetter + c.ties, 6);
  assert.equal(c.baseBetter, expected.filter((d) => d > 0.001).length);
  assert.equal(c.otherBetter, expected.filter((d) => d < -0.001).length);

  // a tie: within 0.1 point of excess ASR
  const tied = compareWith([row({}), row({ defense: 'ft', asrAfter: 0.0505 })], 'vardefense:bn-distill')[0];
  assert.deepEqual([tied.baseBetter, tied.otherBetter, tied.ties], [0, 0, 1]);
  assert.throws(() => compareWith(rows, 'nad'), /--compare: no defense 'nad' in these reports \(there are: vardefense:bn-distill, ft\)/);
  assert.match(comparisonText(rows, 'ft', 'markdown'), /\| vardefense:bn-distill \| 6 \| -/);
});

test('standings: means per defense over its models, best ACC - ASR first, settings at the goal', () => {
  const rows: SummaryRow[] = [];
  for (const seed of [2, 3, 4]) {
    // meets the patch goal (excess 0.3 pt, drop 0.5 pt) and misses the blend one (ASR 6%)
    rows.push(row({ seed, accAfter: 0.915, asrAfter: 0.013, floorAfter: 0.01 }));
    rows.push(row({ seed, attack: 'blended noise, alpha 0.2', accAfter: 0.915, asrAfter: 0.06, floorAfter: 0.01 }));
    rows.push(row({ seed, defense: 'ft', accAfter: 0.91 - seed / 100, asrAfter: 0.5 }));
    rows.push(row({ seed, defense: 'ft', settings: 'lr=0.02', accAfter: 0.9, asrAfter: 0.2 }));
  }
  const s = standings(rows);
  assert.deepEqual(s.map((x) => x.defense), ['vardefense:bn-distill', 'ft (lr=0.02)', 'ft']);
  assert.deepEqual([s[0].models, s[0].goalsMet, s[0].goalsTotal], [6, 1, 2]);
  assert.ok(Math.abs(s[0].accMinusAsr!.mean - (0.915 - (0.013 + 0.06) / 2)) < 1e-12);
  const ftDrops = [2, 3, 4].map((seed) => 0.92 - (0.91 - seed / 100));
  assert.ok(Math.abs(s[2].accDrop.mean - 0.04) < 1e-12 && Math.abs(s[2].accDrop.std! - 0.01) < 1e-12, JSON.stringify(ftDrops));
  assert.equal(columnOf(rows[3]), 'ft (lr=0.02)');
  const csv = standingsText(rows, 'csv').split('\n');
  assert.equal(csv.length, 4);
  assert.match(standingsText(rows, 'markdown'), /\| vardefense:bn-distill \| 6 \| 0\.50 ± 0\.00 \|.*\| 1\/2 \|/);
  // the worst run: the blend's excess 5 points, ft's largest drop (seed 4: 0.92 - 0.87)
  assert.ok(Math.abs(s[0].worstExcess! - 0.05) < 1e-12);
  assert.ok(Math.abs(s[2].worstAccDrop - 0.05) < 1e-12);
  assert.equal(s[0].verdict, null, 'no verdict in these rows');
  // the verdict's tally against ASR after above or below 5%: right, misses, false alarms
  const v = standings([row({ asrAfter: 0.3, verdictLikely: true }), row({ seed: 2, asrAfter: 0.3, verdictLikely: false }),
    row({ seed: 3, asrAfter: 0.01, verdictLikely: true }), row({ seed: 4, asrAfter: 0.01, verdictLikely: false }), row({ seed: 5, asrAfter: 0.01 })])[0].verdict;
  assert.deepEqual(v, { runs: 4, right: 2, misses: 1, falseAlarms: 1 });
  assert.match(standingsText(rows.concat(row({ seed: 9, verdictLikely: true, asrAfter: 0.01 })), 'markdown'), /\| 1 \/ 0 \/ 0 of 1 \||\| 0 \/ 0 \/ 1 of 1 \|/);
});

test('meetsGoal: the thresholds of docs/protocol.md, with margin on both sides', () => {
  assert.equal(meetsGoal('5x5 random patch, random position', 0.009, 0.02, 0.004), true);
  assert.equal(meetsGoal('5x5 random patch, random position', 0.011, 0.02, 0.004), false);
  assert.equal(meetsGoal('5x5 random patch, random position', 0.009, 0.02, 0.006), false);
  assert.equal(meetsGoal('blended noise, alpha 0.2', 0.014, 0.049, 0.04), true);
  assert.equal(meetsGoal('blended noise, alpha 0.2', 0.016, 0.049, 0.04), false);
  assert.equal(meetsGoal('SIG sinusoid, delta 40, frequency 6 (clean label)', 0, 0, 0), null);
});
