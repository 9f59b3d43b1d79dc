// `vardefense detect` end to end on a small synthetic training run: the per-class table, detect.json,
// and errors that name the option.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { runCli, tinyTrainedRun, tmpDir } from '../helpers';

const run = runCli;

test('detect: a per-class table and detect.json from a training run', () => {
  const root = tmpDir('detect');
  const { data, runDir } = tinyTrainedRun(root, { train: 1000, test: 100 });
  const out = run('detect', '--run', runDir, '--data-dir', data, '--preset', 'cpu-short', '--set', 'epochs=1');
  assert.match(out, /\| class \| mask L1 \| anomaly index \| flagged \|/);
  const rows = out.split('\n').filter((l) => /^\| \d+ \|/.test(l));
  assert.equal(rows.length, 10);
  assert.match(out, /^flagged: .*detect\.json$/m);
  const report = JSON.parse(fs.readFileSync(path.join(runDir, 'detect.json'), 'utf8'));
  assert.equal(report.method, 'neural-cleanse');
  assert.equal(report.options.epochs, 1);
  assert.equal(report.classes.length, 10);
  assert.equal(report.source.run, path.resolve(runDir));
  for (const k of report.classes) assert.ok(k.epochs === 1 && (k.maskL1 === null || k.maskL1 >= 0), JSON.stringify(k).slice(0, 200));
  assert.throws(() => run('detect', '--run', runDir, '--data-dir', data, '--set', 'lr=-1'), /neural-cleanse: option 'lr'/);
  assert.throws(() => run('detect', '--run', runDir, '--data-dir', data, '--preset', 'quick'), /unknown preset 'quick'/);
  fs.rmSync(root, { recursive: true });
});
