// `vardefense defend` end to end on a small synthetic training run: purified weights, a report with
// before/after metrics, a comparison table, finished methods skipped on rerun, clear errors.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { loadSafetensors } from '../../src/torch';
import { runCli, tinyTrainedRun, tmpDir } from '../helpers';

const run = runCli;

test('defend: ft and the paper preset on a trained run, resumable, with reports', () => {
  const root = tmpDir('defend');
  const { data, runDir } = tinyTrainedRun(root, { train: 2000, test: 200 });
  const args = ['defend', '--run', runDir, '--data-dir', data, '--method', 'ft,vardefense:paper', '--set', 'epochs=1', '--set', 'batchSize=50'];
  const table = run(...args);
  assert.match(table, /\| ft \| .* \| 1\.00 \|/);
  assert.match(table, /\| vardefense:paper \|/);
  for (const d of ['ft', 'vardefense-paper']) {
    const r = JSON.parse(fs.readFileSync(path.join(runDir, 'defenses', d, 'report.json'), 'utf8'));
    assert.equal(r.before.testImages, 200);
    assert.ok(r.after.asr >= 0 && r.after.asr <= 1);
    assert.equal(r.report.options.epochs, 1);
    const w = loadSafetensors(path.join(runDir, 'defenses', d, 'model.safetensors'));
    assert.ok(w.tensors.has('layer4.1.bn2.weight'));
    assert.equal(w.metadata.method, d === 'ft' ? 'ft' : 'vardefense');
  }
  const vd = JSON.parse(fs.readFileSync(path.join(runDir, 'defenses', 'vardefense-paper', 'report.json'), 'utf8'));
  assert.equal(vd.report.perLayer.length, 4);
  assert.equal(vd.report.lambda, 1e-4);
  // the residual-backdoor verdict: the original's class search, once for both methods, and the purified model's
  const ftr = JSON.parse(fs.readFileSync(path.join(runDir, 'defenses', 'ft', 'report.json'), 'utf8'));
  for (const r of [vd, ftr]) {
    assert.equal(typeof r.verdict.backdoorLikely, 'boolean');
    assert.equal(r.verdict.after.masks.length, 10);
    // and the square scan's, by default
    assert.equal(r.verdict.scan.after.successes.length, 10);
    assert.equal(typeof r.verdict.scan.backdoorLikely, 'boolean');
    assert.ok(r.verdict.after.seconds > 0);
  }
  assert.deepEqual(vd.verdict.before, ftr.verdict.before, 'one search of the original for the request');
  assert.deepEqual(vd.verdict.scan.before, ftr.verdict.scan.before, 'one scan of the original for the request');
  assert.match(table, /\| backdoor left\? \(verdict\) \|/);
  assert.match(table, /\| (likely, class \d \((square scan, )?index [-\d.]+\)|none found \(index [-\d.]+, square scan [-\d.]+\)) \|/);

  const again = run(...args);
  assert.equal(again, table, 'a rerun reuses the finished reports');
  assert.throws(() => run('defend', '--run', runDir, '--data-dir', data, '--method', 'vardefense', '--set', 'metric=median'),
    /option 'metric' must be one of 'variance', 'entropy', 'mean', 'weight', 'random', got 'median'/);
  assert.throws(() => run('defend', '--run', path.join(root, 'nothing')), /no config.json there/);
  fs.rmSync(root, { recursive: true });
});
