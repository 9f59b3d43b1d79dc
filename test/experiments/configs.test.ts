import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { expandCells, loadExperiment } from '../../src/experiments/config';
import { DEFENSES, defenseMethod, resolveOptions } from '../../src/defenses/registry';
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

test('experiment --attacks runs a part of the grid and names what is not in it', async () => {
  const { spawnSync } = await import('child_process');
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'experiment', path.join(dir, 'protocol-final-cpu.yaml'), '--attacks', 'blend,patch9'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--attacks: patch9 not in the config's attacks \(patch3-fixed, patch3-random, .*blend\)/);
});

test('experiment --defenses keeps the entries with those labels (options included), ids unchanged, and names what is not there', async () => {
  const { spawnSync } = await import('child_process');
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'experiment', path.join(dir, 'protocol-final-cpu.yaml'), '--defenses', 'ft,vardefense:bn-distil'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--defenses: vardefense:bn-distil not in the config's defenses \(vardefense:bn-distill, vardefense:control-random, .*, ft, .*gan:cpu-short/);
  const { onlyDefenses } = await import('../../src/cli/experiment');
  const fin = loadExperiment(path.join(dir, 'protocol-final-cpu.yaml'));
  const part = onlyDefenses(fin, 'ft,vardefense:bn-distill,anp:default');
  const all = new Map(expandCells(fin).map((c) => [c.id, c]));
  const cells = expandCells(part);
  // bn-distill's three entries (plain, statsSource, lr 0.02), ft and anp (with its iterations): 5 a model
  assert.equal(cells.length, 5 * 21);
  for (const c of cells) assert.deepEqual(all.get(c.id), c, 'the same cell as in the whole grid');
  assert.deepEqual(new Set(cells.map((c) => c.method)), new Set(['ft', 'vardefense', 'anp']));
});

// sha256 of the 420 cell ids (each a hash of the model's training config and the defense's resolved
// options) as the frozen commit bbfd0a1 expands protocol-final-cpu.yaml: equal only while no preset,
// option default or training default that the final grid runs has changed since the freeze
const FROZEN_FINAL_GRID = '59f8e3d6a1e60fc864d83386e4aef4715168c8dfc1dd8072b4af67a0ed7d6de6';

test('the final grid expands to the frozen commit\'s cells: no preset changed after the freeze', async () => {
  const { createHash } = await import('crypto');
  const ids = expandCells(loadExperiment(path.join(dir, 'protocol-final-cpu.yaml'))).map((c) => c.id);
  assert.equal(ids.length, 420);
  assert.equal(createHash('sha256').update(`${ids.join('\n')}\n`).digest('hex'), FROZEN_FINAL_GRID,
    'a preset or the final grid changed after the freeze (docs/protocol.md section 2): new presets need new fresh seeds');
  // the check can fail: one option moved gives other ids
  const moved = expandCells({ ...loadExperiment(path.join(dir, 'protocol-final-cpu.yaml')), valFraction: 0.2 }).map((c) => c.id);
  assert.notEqual(createHash('sha256').update(`${moved.join('\n')}\n`).digest('hex'), FROZEN_FINAL_GRID);
});

test('the protocol grids: development on seed 1, the final on fresh seeds with fresh attacks, every defense and the controls', () => {
  const dev = loadExperiment(path.join(dir, 'protocol-dev-cpu.yaml')), fin = loadExperiment(path.join(dir, 'protocol-final-cpu.yaml'));
  assert.deepEqual(dev.seeds, [1]);
  assert.deepEqual([...dev.datasets].sort(), ['fashion-mnist', 'mnist']);
  assert.deepEqual(fin.seeds, [2, 3, 4]);
  assert.deepEqual(fin.datasets, ['fashion-mnist']);
  const settings = ['patch3-fixed', 'patch3-random', 'patch5-fixed', 'patch5-random', 'patch7-fixed', 'patch7-random', 'blend'];
  for (const e of [dev, fin]) assert.deepEqual(e.attacks.map((a) => a.name), settings);
  const cells = expandCells(fin);
  // attack seed, training seed (and with it the clean split) all equal the cell's seed
  for (const c of cells) assert.equal(c.train.attack!.seed, c.seed, `${c.attack} seed ${c.seed}: fresh attack`);
  assert.equal(new Set(cells.map((c) => c.modelKey)).size, 7 * 3);
  const labels = new Set(cells.map((c) => (c.preset === 'default' ? c.method : `${c.method}:${c.preset}`)));
  for (const name of Object.keys(DEFENSES)) assert.ok([...labels].some((l) => l.split(':')[0] === name), `final grid runs ${name}`);
  for (const p of ['paper', 'bn-distill', 'control-random', 'control-gamma', 'control-mean', 'control-lambda0']) assert.ok(labels.has(`vardefense:${p}`), `final grid runs vardefense:${p}`);
  // development: the lr grid for every SGD fine-tuning defense
  const lrs = new Map<string, Set<unknown>>();
  for (const c of expandCells(dev)) if (c.set.lr !== undefined) lrs.set(`${c.method}:${c.preset}`, (lrs.get(`${c.method}:${c.preset}`) ?? new Set()).add(c.set.lr));
  assert.ok(lrs.size >= 10);
  for (const [k, v] of lrs) assert.deepEqual([...v].sort(), [0.005, 0.01, 0.02], k);
  // final: the common lr 0.01 for every SGD fine-tune, apart from the labelled extras (published schedules, the development lr)
  const sgd = ['ft', 'fine-pruning', 'nad', 'gan', 'fst', 'ft-sam', 'vardefense'];
  let common = 0;
  for (const c of cells.filter((x) => sgd.includes(x.method) && x.preset !== 'published' && x.set.lr === undefined)) {
    assert.equal((resolveOptions(defenseMethod(c.method), c.preset, c.set) as { lr: number }).lr, 0.01, `${c.method}:${c.preset} ${JSON.stringify(c.set)}`);
    common++;
  }
  assert.equal(common, 21 * 13, 'thirteen SGD fine-tuning cells a model run at the common lr');
  const extras = cells.filter((x) => x.preset === 'published' || x.set.lr !== undefined).map((x) => `${x.method}:${x.preset}:${x.set.lr ?? ''}`);
  assert.deepEqual([...new Set(extras)].sort(), ['ft:published:', 'nad:published:', 'vardefense:bn-distill:0.02', 'vardefense:control-lambda0:0.02']);
});
