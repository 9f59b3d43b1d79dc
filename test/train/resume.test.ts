// A real training run killed with SIGKILL resumes after its last checkpoint and ends with the same
// weights as an uninterrupted run.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { loadSafetensors } from '../../src/torch';
import { repoRoot, tmpDir } from '../helpers';

const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const args = (data: string, out: string): string[] => ['train', '--dataset', 'mnist', '--data-dir', data, '--model', 'small-cnn', '--epochs', '3',
  '--batch-size', '64', '--attack', 'patch', '--trigger-size', '3', '--no-eval-each-epoch', '--seed', '5', '--out', out];

function weights(file: string): Map<string, Buffer> {
  return new Map([...loadSafetensors(file).tensors].map(([k, t]) => [k, t.bytes()]));
}

test('kill -9 mid-run, --resume, and the result equals an uninterrupted run', async () => {
  const root = tmpDir('resume');
  const data = path.join(root, 'data');
  writeSyntheticIdx(path.join(data, 'mnist'), { train: 6000, test: 300 });
  const full = path.join(root, 'full'), killed = path.join(root, 'killed');
  execFileSync(process.execPath, [cli, ...args(data, full)], { stdio: 'ignore' });

  const child = spawn(process.execPath, [cli, ...args(data, killed)], { stdio: 'ignore' });
  const ckpt = path.join(killed, 'checkpoint.safetensors');
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
  while (!fs.existsSync(ckpt)) {
    await new Promise((r) => setTimeout(r, 20));
    if (child.exitCode !== null) break;
  }
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL', 'the run was killed before it finished');
  assert.equal(loadSafetensors(ckpt).metadata.epoch, '1', 'killed during epoch 2');
  assert.ok(!fs.existsSync(path.join(killed, 'model.safetensors')));

  assert.throws(() => execFileSync(process.execPath, [cli, ...args(data, killed)], { stdio: 'pipe' }), /already holds a run; pass --resume/);
  const out = execFileSync(process.execPath, [cli, ...args(data, killed), '--resume', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const result = JSON.parse(out) as { history: { epoch: number }[] };
  assert.deepEqual(result.history.map((h) => h.epoch), [1, 2, 3]);

  const a = weights(path.join(full, 'model.safetensors')), b = weights(path.join(killed, 'model.safetensors'));
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, v] of a) assert.equal(Buffer.compare(v, b.get(k)!), 0, `${k} differs from the uninterrupted run`);
  fs.rmSync(root, { recursive: true });
});
