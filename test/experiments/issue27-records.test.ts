import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { aggregateText } from '../../src/report/aggregate';
import { standingsText } from '../../src/report/compare';
import { collectRows } from '../../src/report/summary';
import { repoRoot } from '../helpers';

// Issue 27's development runs (docs/protocol.md section 10): the report.json records kept in the repo
// must regenerate the tables docs/results.md prints (`vardefense report experiments/records/issue27-dev
// --aggregate` and `--standings`).
test('the issue 27 development records give the tables of docs/results.md', () => {
  const rows = collectRows([path.join(repoRoot, 'experiments', 'records', 'issue27-dev')]);
  assert.ok(rows.length >= 40, `${rows.length} records`);
  const docs = fs.readFileSync(path.join(repoRoot, 'docs', 'results.md'), 'utf8');
  const start = docs.indexOf('## Issue 27: development runs');
  assert.ok(start >= 0, 'docs/results.md has the issue 27 development section');
  const section = docs.slice(start, docs.indexOf('\n## ', start + 10));
  assert.ok(section.includes(aggregateText(rows, 'markdown').trim()), 'the per-judge table is the records\'');
  assert.ok(section.includes(standingsText(rows, 'markdown').trim()), 'the standings are the records\'');
});
