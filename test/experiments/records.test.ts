import { test } from 'node:test';
import * as assert from 'assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { aggregateText } from '../../src/report/aggregate';
import { collectRows } from '../../src/report/summary';
import { repoRoot } from '../helpers';

// The arena's shipped cell records must regenerate the per-setting tables that docs/final-tables.md prints.
test('the arena records in experiments/records give the tables of docs/final-tables.md', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vardefense-records-'));
  try {
    execFileSync('tar', ['xzf', path.join(repoRoot, 'experiments', 'records', 'arena-attacks-final-cpu.tar.gz'), '-C', tmp]);
    const rows = collectRows([path.join(tmp, 'arena-attacks-final-cpu', 'cells')]);
    assert.equal(rows.length, 108, 'every cell of the arena');
    const tables = aggregateText(rows, 'by-defense').trim();
    const docs = fs.readFileSync(path.join(repoRoot, 'docs', 'final-tables.md'), 'utf8');
    const start = docs.indexOf('## SIG and WaNet');
    assert.ok(start >= 0, 'docs/final-tables.md has the arena section');
    const section = docs.slice(start, docs.indexOf('### Standings', start));
    assert.ok(section.includes(tables), 'docs/final-tables.md prints the tables the records give');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
