import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { collectRows } from '../../src/report/summary';
import { repoRoot } from '../helpers';

// Issue 27's runs on the judges (docs/protocol.md section 10): the report.json records kept in the repo
// must regenerate every table docs/results.md prints from them (experiments/issue27-dev/splice-tables.js:
// `vardefense report ... --aggregate` and `--standings`, and the goal tables of experiments/issue27-final/goals.js).
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { sections } = require(path.join(repoRoot, 'experiments', 'issue27-dev', 'splice-tables.js')) as { sections: () => Record<string, string> };

test('the issue 27 records give the tables of docs/results.md', () => {
  assert.ok(collectRows([path.join(repoRoot, 'experiments', 'records', 'issue27-dev')]).length >= 40, 'the development records are there');
  const docs = fs.readFileSync(path.join(repoRoot, 'docs', 'results.md'), 'utf8');
  const s = sections();
  assert.ok(Object.keys(s).length >= 3);
  for (const [name, body] of Object.entries(s)) {
    const a = docs.indexOf(`<!-- ${name}: generated -->`), b = docs.indexOf(`<!-- ${name}: end -->`);
    assert.ok(a >= 0 && b > a, `docs/results.md has the markers of ${name}`);
    assert.equal(docs.slice(a, b).split('\n').slice(1).join('\n').trim(), body.trim(), `${name}: the table is the records'`);
  }
});

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { goal } = require(path.join(repoRoot, 'experiments', 'issue27-final', 'goals.js')) as { goal: (family: string, s: Record<string, { mean: number; worst: number }>) => boolean | null };

test('the goal of each family, as issue 27 states it, on a judge\'s mean and worst run', () => {
  const s = (excess: [number, number], drop: [number, number], asr: [number, number]) => ({
    excess: { mean: excess[0], worst: excess[1] }, drop: { mean: drop[0], worst: drop[1] }, asr: { mean: asr[0], worst: asr[1] } });
  // patch: mean excess <= 0.5 point, worst run <= 2 points, mean ACC drop <= 1 point
  assert.equal(goal('patch', s([0.004, 0.015], [0.009, 0.012], [0.02, 0.03])), true);
  assert.equal(goal('patch', s([0.006, 0.015], [0.009, 0.012], [0.02, 0.03])), false, 'mean excess');
  assert.equal(goal('patch', s([0.004, 0.025], [0.009, 0.012], [0.02, 0.03])), false, 'worst run');
  assert.equal(goal('patch', s([0.004, 0.015], [0.011, 0.012], [0.02, 0.03])), false, 'ACC drop');
  // blends: ASR <= 5% at <= 1.5 points of ACC
  assert.equal(goal('blend', s([0.3, 0.3], [0.014, 0.02], [0.049, 0.2])), true);
  assert.equal(goal('blend', s([0, 0], [0.016, 0.02], [0.01, 0.01])), false);
  assert.equal(goal('blend', s([0, 0], [0.01, 0.01], [0.051, 0.06])), false);
  // SIG and WaNet: excess <= 2 points, at any ACC
  for (const f of ['sig', 'warp']) {
    assert.equal(goal(f, s([0.019, 0.05], [0.05, 0.05], [0.5, 0.5])), true);
    assert.equal(goal(f, s([0.021, 0.021], [0, 0], [0.03, 0.03])), false);
  }
  assert.equal(goal('image', s([0, 0], [0, 0], [0, 0])), null, 'no goal for other kinds');
});
