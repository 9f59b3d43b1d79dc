import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { expandCells, loadExperiment } from '../../src/experiments/config';
import { repoRoot } from '../helpers';

const dir = path.join(repoRoot, 'experiments');
const configs = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));

test('every shipped config is valid and expands (defense options included)', () => {
  for (const f of configs) {
    const e = loadExperiment(path.join(dir, f));
    assert.equal(e.name, f.replace(/\.ya?ml$/, ''), `${f}: name matches the file (its default output folder)`);
    assert.ok(expandCells(e).length > 0, f);
  }
});

test('each paper table and figure ships a CPU-sized and a paper-sized variant', () => {
  for (const what of ['table1', 'table2', 'table3-lambda', 'figure3-triggers', 'figure4-datasets', 'figure5-layers']) {
    const cpu = configs.find((f) => f.startsWith(`${what}-`) && f.includes('cpu'));
    const paper = configs.find((f) => f === `${what}-paper.yaml`);
    assert.ok(cpu && paper, `${what}: ${cpu} / ${paper}`);
    const c = loadExperiment(path.join(dir, cpu)), p = loadExperiment(path.join(dir, paper));
    assert.ok(c.model.width < 64 && c.datasets.every((d) => d === 'mnist' || d === 'fashion-mnist'), `${cpu}: narrow model, MNIST-format data`);
    assert.equal(p.model.width, 64, `${paper}: the paper's ResNet-18`);
  }
  const p4 = loadExperiment(path.join(dir, 'figure4-datasets-paper.yaml'));
  assert.deepEqual([...p4.datasets].sort(), ['cifar10', 'cifar100', 'fashion-mnist', 'mnist']);
});

test('the sweeps of Table 3 and Figure 5 give one cell per value', () => {
  const lambdas = expandCells(loadExperiment(path.join(dir, 'table3-lambda-cpu.yaml'))).map((c) => c.set.lambda);
  assert.ok(new Set(lambdas).size >= 5);
  const layers = expandCells(loadExperiment(path.join(dir, 'figure5-layers-cpu.yaml'))).map((c) => c.set.layers);
  assert.deepEqual([...new Set(layers)], [2, 4, 6, 8, 10, 14, 20]);
});

test('experiment --datasets names what is not in the config', async () => {
  const { spawnSync } = await import('child_process');
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'experiment', path.join(dir, 'table3-lambda-cpu.yaml'), '--datasets', 'mnist,cifar10'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--datasets: cifar10 not in the config's datasets \(fashion-mnist, mnist\)/);
});
