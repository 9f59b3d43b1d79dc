import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { expandCells, parseExperiment } from '../../src/experiments/config';
import { readResults, runExperiment } from '../../src/experiments/runner';
import { DEFENSES } from '../../src/defenses/registry';
import type { DefendOutcome } from '../../src/pipeline/defend';
import { tmpDir } from '../helpers';

const GRID = `
name: tiny
datasets: [mnist]
model: { name: resnet18, width: 4 }
train: { epochs: 1, batchSize: 64 }
verdict: false
attacks:
  - { name: patch3, attack: patch, triggerSize: 3 }
  - { name: noise, attack: blend }
defenses:
  - ft
  - { method: vardefense, preset: paper, set: { epochs: 1 }, sweep: { lambda: [0, 1] } }
`;

test('configs are validated with errors that name the key and the allowed values', () => {
  assert.throws(() => parseExperiment(GRID.replace('[mnist]', '[svhn]'), 'x.yaml'),
    /x\.yaml: 'datasets\.0' must be one of 'mnist', 'fashion-mnist', 'cifar10', 'cifar100', got 'svhn'/);
  assert.throws(() => parseExperiment(GRID.replace('name: tiny', 'name: tiny\nepochs: 3'), 'x.yaml'), /'\(root\)': unknown key\(s\) 'epochs'/);
  assert.throws(() => parseExperiment('{"name": 1', 'x.json'), /x\.json: not valid JSON/);
  assert.throws(() => parseExperiment(GRID.replace('verdict: false', 'verdict: { steps: 0 }'), 'x.yaml'), /'verdict/);
  const bad = parseExperiment(GRID.replace('lambda: [0, 1]', 'lamda: [0, 1]'), 'x.yaml');
  assert.throws(() => expandCells(bad), /defense 'vardefense:paper': vardefense: unknown option\(s\) 'lamda'/);
});

test('the grid expands to datasets x attacks x seeds x defenses x sweep points, one model per attack', () => {
  const cells = expandCells(parseExperiment(GRID, 'x.yaml'));
  assert.equal(cells.length, 2 * 3);
  assert.equal(new Set(cells.map((c) => c.id)).size, 6);
  assert.equal(new Set(cells.map((c) => c.modelKey)).size, 2);
  assert.deepEqual(cells.filter((c) => c.method === 'vardefense').map((c) => c.set.lambda), [0, 1, 0, 1]);
  assert.deepEqual(expandCells(parseExperiment(GRID, 'y.yaml')).map((c) => c.id), cells.map((c) => c.id), 'ids are stable');
  // precision: fp32 said or not is the same grid; bf16 is another grid of other models
  assert.deepEqual(expandCells(parseExperiment(`${GRID}precision: fp32\n`, 'x.yaml')).map((c) => c.id), cells.map((c) => c.id));
  const bf16 = expandCells(parseExperiment(`${GRID}precision: bf16\n`, 'x.yaml'));
  assert.ok(bf16.every((c, i) => c.id !== cells[i].id && c.modelKey !== cells[i].modelKey && c.train.precision === 'bf16'));
  assert.ok(cells.every((c) => !('precision' in c.train)), 'an fp32 model config has no precision key');
  assert.throws(() => parseExperiment(`${GRID}precision: fp16\n`, 'x.yaml'), /'precision' must be one of 'fp32', 'bf16', got 'fp16'/);
});

test('a cell whose preset changed is a new cell, never taken as done', () => {
  const ids = (): string[] => expandCells(parseExperiment(GRID, 'x.yaml')).map((c) => c.id);
  const before = ids();
  const ft = DEFENSES.ft.presets.default as { lr: number };
  const lr = ft.lr;
  try {
    ft.lr = lr * 2;
    const after = ids();
    const cells = expandCells(parseExperiment(GRID, 'x.yaml'));
    cells.forEach((c, i) => assert.equal(after[i] !== before[i], c.method === 'ft', `${c.method}: id changes exactly when its options do`));
  } finally {
    ft.lr = lr;
  }
  assert.deepEqual(ids(), before);
});

test('an experiment trains each model once, skips finished cells on rerun, and survives a torn results line', () => {
  const root = tmpDir('experiment');
  const data = path.join(root, 'data');
  writeSyntheticIdx(path.join(data, 'mnist'), { train: 1200, test: 100 });
  // the verdict with 2 search steps and without the square scan: the original model's search is made
  // once, by the model, for the three cells
  const e = parseExperiment(GRID.replace(/  - \{ name: noise.*\n/, '').replace('verdict: false', 'verdict: { steps: 2, scan: false }'), 'x.yaml');
  const out = path.join(root, 'out');
  const first = runExperiment(e, out, { dataDir: data });
  const verdicts = first.map((r) => (JSON.parse(fs.readFileSync(path.join(r.dir, 'report.json'), 'utf8')) as DefendOutcome).verdict!);
  assert.deepEqual(verdicts.map((v) => v.steps), [2, 2, 2]);
  assert.deepEqual(verdicts.map((v) => v.scan), [undefined, undefined, undefined], 'no square scan');
  for (const v of verdicts.slice(1)) assert.deepEqual(v.before, verdicts[0].before, 'one search of the original, shared');
  assert.ok(fs.existsSync(path.join(out, 'models', fs.readdirSync(path.join(out, 'models'))[0], 'verdict-original.json')));
  assert.equal(first.length, 3);
  assert.equal(fs.readdirSync(path.join(out, 'models')).length, 1, 'one backdoored model shared by the three cells');
  assert.equal(readResults(out).length, 3);
  assert.equal(fs.readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n').length, 4);
  for (const r of first) assert.ok(r.asrBefore !== null && r.accAfter >= 0 && r.accAfter <= 1);
  for (const r of first) assert.ok(Number.isInteger(r.threads) && r.threads! >= 1, 'the thread count is recorded');
  for (const r of first) assert.ok(r.cpu && /ATen \S+/.test(r.kernels ?? ''), `CPU and kernels recorded: ${r.cpu} / ${r.kernels}`);

  fs.appendFileSync(path.join(out, 'results.jsonl'), '{"cell": "torn'); // a kill in the middle of a write
  const csvFile = path.join(out, 'results.csv');
  fs.writeFileSync(csvFile, fs.readFileSync(csvFile, 'utf8').replace(',threads,', ',')); // as an older version wrote it
  const skipped: boolean[] = [];
  const again = runExperiment(e, out, { dataDir: data, hooks: { onCell: (_r, _i, _n, s) => skipped.push(s) } });
  assert.deepEqual(skipped, [true, true, true]);
  assert.deepEqual(again.map((r) => r.accAfter), first.map((r) => r.accAfter));
  assert.equal(readResults(out).length, 3, 'no duplicate, torn line ignored');
  assert.match(fs.readFileSync(csvFile, 'utf8'), /^cell,.*,seconds,threads,cpu,kernels,dir\n(.*\n){3}$/, 'an older CSV is rebuilt with the current columns');
  fs.rmSync(root, { recursive: true });
});

test('kill -9 during a cell loses only that cell: the rerun finishes the grid without duplicates', async () => {
  const { spawn, execFileSync } = await import('child_process');
  const { repoRoot } = await import('../helpers');
  const root = tmpDir('experiment-kill');
  const data = path.join(root, 'data');
  writeSyntheticIdx(path.join(data, 'mnist'), { train: 1200, test: 100 });
  const config = path.join(root, 'grid.yaml');
  fs.writeFileSync(config, GRID.replace(/  - \{ name: noise.*\n/, ''));
  const out = path.join(root, 'out');
  const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  const args = [cli, 'experiment', config, '--out', out, '--data-dir', data];
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, sig) => resolve(sig)));
  while (readResults(out).length < 1 && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL', 'killed before the grid finished');
  const before = readResults(out).length;
  assert.ok(before >= 1 && before < 3, `${before} cells recorded at the kill`);
  execFileSync(process.execPath, args, { stdio: 'ignore' });
  const results = readResults(out);
  assert.equal(results.length, 3);
  assert.equal(new Set(results.map((r) => r.cell)).size, 3);
  assert.equal(fs.readdirSync(path.join(out, 'models')).length, 1);
  fs.rmSync(root, { recursive: true });
});

test('--models shares one backdoored model between experiments; the demo prints the comparison and writes the HTML report', async () => {
  const { execFileSync, spawnSync } = await import('child_process');
  const { repoRoot } = await import('../helpers');
  const root = tmpDir('experiment-demo');
  const data = path.join(root, 'data');
  writeSyntheticIdx(path.join(data, 'fashion-mnist'), { train: 1200, test: 100 });
  const grid = (name: string): string => GRID.replace('name: tiny', `name: ${name}`).replace('[mnist]', '[fashion-mnist]')
    .replace(/  - \{ name: noise.*\n/, '').replace(/  - \{ method: vardefense.*\n/, '  - { method: vardefense, set: { epochs: 1, searchSteps: 2 } }\n  - clp\n');
  fs.writeFileSync(path.join(root, 'a.yaml'), grid('a'));
  fs.writeFileSync(path.join(root, 'b.yaml'), grid('b'));
  const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  const models = path.join(root, 'models');
  const run = (args: string[]): string => execFileSync(process.execPath, [cli, ...args, '--data-dir', data], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const a = spawnSync(process.execPath, [cli, 'experiment', 'a.yaml', '--models', models, '--data-dir', data], { cwd: root, encoding: 'utf8' });
  const b = spawnSync(process.execPath, [cli, 'experiment', 'b.yaml', '--models', models, '--data-dir', data], { cwd: root, encoding: 'utf8' });
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stderr, /training the backdoored model/);
  assert.equal(b.status, 0, b.stderr);
  assert.doesNotMatch(b.stderr, /training the backdoored model/, 'b reuses the model a trained');
  assert.equal(fs.readdirSync(models).length, 1);
  assert.ok(!fs.existsSync(path.join(root, 'runs', 'b', 'models')));

  const demo = run(['demo', '--config', 'a.yaml', '--out', 'demo-out']);
  assert.match(demo, /backdoored model: ACC [\d.]+%\s+ASR [\d.]+%/);
  for (const d of ['vardefense', 'ft', 'clp']) assert.match(demo, new RegExp(`^${d}\\s+[\\d.]+%\\s+[\\d.]+%`, 'm'), `a row for ${d}`);
  const html = fs.readFileSync(path.join(root, 'demo-out', 'report.html'), 'utf8');
  assert.match(html, /<svg/);
  assert.equal(readResults(path.join(root, 'demo-out')).length, 3);
  fs.rmSync(root, { recursive: true });
});
