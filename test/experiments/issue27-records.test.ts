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
