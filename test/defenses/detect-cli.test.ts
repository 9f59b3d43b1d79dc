// `vardefense detect` end to end on a small synthetic training run: the per-class table, detect.json,
// and errors that name the option; on weights given without the run, the same result from the same
// clean images.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { runCli, tinyTrainedRun, tmpDir } from '../helpers';
import { loadCleanData } from '../../src/pipeline/clean-data';
import { detect } from '../../src/pipeline/detect';
import { readRun } from '../../src/pipeline/run-dir';

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

  // the run's weights and its clean split handed over as images, with the run's hold-out seed: the same masks
  const info = readRun(runDir);
  const set = loadCleanData({ kind: 'run', dataset: 'mnist', indices: info.cleanIndices }, data);
  // (a 0.8 success bar and 5 epochs: most classes get a finite mask in a second)
  const options = { preset: 'cpu-short', overrides: { epochs: 5, successThreshold: 0.8 }, log: (): void => {} };
  const viaRun = detect({ run: runDir, dataDir: data, out: path.join(root, 'run.json'), ...options });
  const own = detect({ model: { model: 'resnet18', width: 4, dataset: 'mnist', weights: info.weights }, clean: { kind: 'images', set },
    holdOutSeed: info.cfg.seed, out: path.join(root, 'own.json'), ...options });
  const masks = viaRun.report.classes.map((k) => k.maskL1);
  assert.deepEqual(own.report.classes.map((k) => k.maskL1), masks);
  const finite = masks.filter(Number.isFinite);
  assert.ok(finite.length >= 3 && new Set(finite).size >= 3, `masks found and different between classes, so equality says something: ${masks}`);
  const json = JSON.parse(fs.readFileSync(path.join(root, 'own.json'), 'utf8'));
  assert.deepEqual(json.source.target, { model: 'resnet18', width: 4, dataset: 'mnist' });
  assert.equal(json.source.clean.kind, 'images');

  // the same from the command line, with a draw from the training split
  const weights = ['--weights', info.weights, '--model', 'resnet18', '--width', '4', '--dataset', 'mnist', '--data-dir', data];
  const table = run('detect', ...weights, '--clean-size', '60', '--out', path.join(root, 'cli.json'), '--preset', 'cpu-short', '--set', 'epochs=1');
  assert.equal(table.split('\n').filter((l) => /^\| \d+ \|/.test(l)).length, 10);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'cli.json'), 'utf8')).source.clean, { kind: 'split', size: 60, seed: 1 });
  assert.throws(() => run('detect', ...weights, '--clean-size', '60'), /give --run <dir>, or the model and its clean data: missing --out <detect\.json>/);
  assert.throws(() => run('detect', '--run', runDir, '--data-dir', data, '--model', 'resnet18'), /--model: the model and its clean split come from --run/);
  fs.rmSync(root, { recursive: true });
});
