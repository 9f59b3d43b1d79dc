// Shared test helpers: the Python reference, temporary dirs, tolerant comparisons.
import { execFileSync } from 'child_process';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeSyntheticIdx } from '../src/data/synthetic';
import { Tensor } from '../src/torch';

export const repoRoot = path.resolve(__dirname, '..', '..');

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `vardefense-${tag}-`));
}

const cliMain = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
/** Runs the built CLI and returns its stdout (throws with its stderr on a non-zero exit). */
export const runCli = (...args: string[]): string => execFileSync(process.execPath, [cliMain, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A synthetic MNIST under <root>/data and a width-4 ResNet-18 trained on it for one epoch by the CLI under <root>/run. */
export function tinyTrainedRun(root: string, sizes: { train: number; test: number }): { data: string; runDir: string } {
  const data = path.join(root, 'data');
  writeSyntheticIdx(path.join(data, 'mnist'), sizes);
  const runDir = path.join(root, 'run');
  runCli('train', '--dataset', 'mnist', '--data-dir', data, '--model', 'resnet18', '--width', '4', '--epochs', '1', '--batch-size', '64',
    '--no-eval-each-epoch', '--out', runDir);
  return { data, runDir };
}

/** Runs test/py/<script> with Debian's python3 (python3-torch; pyenv's python3 lacks torch) and returns its stdout. */
export function python(script: string, ...args: string[]): string {
  return execFileSync(process.env.VARDEFENSE_PYTHON ?? '/usr/bin/python3', [path.join(repoRoot, 'test', 'py', script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape, `shapes differ: [${a.shape}] vs [${b.shape}]`);
  const x = a.toArray() as ArrayLike<number | bigint>, y = b.toArray() as ArrayLike<number | bigint>;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(Number(x[i]) - Number(y[i])));
  return m;
}

/** max |a - b| / max(|b|_inf, floor): a relative error robust to tiny entries. */
export function relDiff(a: Tensor, b: Tensor, floor = 1e-6): number {
  let scale = floor;
  for (const v of b.toArray() as Float32Array) scale = Math.max(scale, Math.abs(v));
  return maxAbsDiff(a, b) / scale;
}

export function assertClose(a: Tensor, b: Tensor, atol: number, what = ''): void {
  const d = maxAbsDiff(a, b);
  assert.ok(d <= atol, `${what}: max |diff| ${d} > ${atol}`);
}
