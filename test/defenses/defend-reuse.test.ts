// `vardefense defend` reuses a finished report only when it was computed from the same inputs: the
// weights, the clean and test data, the run's config, the validation fraction and the options.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { repoRoot, tmpDir } from '../helpers';

const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
function run(...args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}

test('defend reruns a method whose weights, data split or options changed, and reuses it otherwise', () => {
  const root = tmpDir('reuse');
  const data = path.join(root, 'data');
  writeSyntheticIdx(path.join(data, 'mnist'), { train: 1200, test: 100 });
  const runDir = path.join(root, 'run'), out = path.join(root, 'defended');
  run('train', '--dataset', 'mnist', '--data-dir', data, '--model', 'small-cnn', '--epochs', '1', '--batch-size', '64', '--no-eval-each-epoch', '--out', runDir);
  const defend = (...more: string[]): string => run('defend', '--run', runDir, '--data-dir', data, '--method', 'ft', '--set', 'epochs=1', '--out', out, '--no-verdict', ...more);
  const report = (): { inputDigest: string; source: { weights: string }; environment: { threads: number; cpu: string; isa: string } } =>
    JSON.parse(fs.readFileSync(path.join(out, 'ft', 'report.json'), 'utf8'));

  assert.doesNotMatch(defend(), /done earlier/);
  const first = report();
  assert.match(first.inputDigest, /^[0-9a-f]{64}$/);
  assert.ok(first.environment.threads >= 1 && first.environment.cpu.length > 0 && first.environment.isa.length > 0, 'threads, CPU and kernels recorded');
  assert.match(defend(), /ft: done earlier/);
  assert.equal(report().inputDigest, first.inputDigest);

  // another model (the purified one, copied) into the same output: not the earlier result
  const other = path.join(root, 'other.safetensors');
  fs.copyFileSync(path.join(out, 'ft', 'model.safetensors'), other);
  assert.match(defend('--weights', other), /computed from other weights, data or options; running it again/);
  const second = report();
  assert.notEqual(second.inputDigest, first.inputDigest);
  assert.equal(second.source.weights, path.resolve(other));
  assert.match(defend('--weights', other), /ft: done earlier/);

  // another validation split, then other options
  assert.match(defend('--weights', other, '--val-fraction', '0.2'), /running it again/);
  assert.match(defend('--weights', other, '--val-fraction', '0.2', '--set', 'lr=0.02'), /running it again/);
  fs.rmSync(root, { recursive: true });
});
