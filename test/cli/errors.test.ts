// Bad arguments and broken run files: the CLI exits 1 with one line that names the argument, file or
// field, and writes nothing. A tiny synthetic MNIST and a one-epoch small-cnn run are the fixtures.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { attackIssues } from '../../src/attacks/poison';
import { PatchSpec } from '../../src/attacks/triggers';
import { readRun } from '../../src/pipeline/run-dir';
import { errorText } from '../../src/cli/errors';
import { EvalFlags, evalTarget } from '../../src/cli/eval';
import { loadModel as loadTargetModel } from '../../src/pipeline/model';
import { AttackFlags, checkedAttack, flagOf } from '../../src/cli/options';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { parseExperiment } from '../../src/experiments/config';
import { loadSafetensors, saveSafetensors } from '../../src/torch';
import { DEFAULT_TRAIN, readTrainConfig, train, TrainConfig } from '../../src/train/run';
import { repoRoot, tmpDir } from '../helpers';

const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');

/** Runs the CLI expecting failure; returns its stderr, checked to be one line without a stack. */
function fails(...args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, VARDEFENSE_DEBUG: '' } });
  assert.equal(r.status, 1, `exit status of ${args.join(' ')}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0], /^error: /);
  return lines[0];
}

const root = tmpDir('cli-errors');
const data = path.join(root, 'data');
writeSyntheticIdx(path.join(data, 'mnist'), { train: 300, test: 50 });
const runDir = path.join(root, 'run');
const cfg: TrainConfig = {
  ...DEFAULT_TRAIN, dataset: 'mnist', model: 'small-cnn', epochs: 1, batchSize: 64, evalEachEpoch: false, cleanFraction: 0.1,
  attack: { trigger: { kind: 'patch', size: 3, pattern: 'white', position: 'fixed', offset: [0, 0], seed: 1 }, poisonRatio: 0.1, target: 0, mode: 'all-to-one', seed: 1 },
};
train(cfg, runDir, { dataDir: data }).model.dispose();
const model = path.join(runDir, 'model.safetensors');
const dataFlags = ['--dataset', 'mnist', '--data-dir', data];

/** A copy of the run with `file` replaced by `content`. */
function brokenRun(name: string, file: string, content: string): string {
  const dir = path.join(root, name);
  fs.cpSync(runDir, dir, { recursive: true });
  fs.writeFileSync(path.join(dir, file), content);
  return dir;
}

test('attackIssues: the trigger must fit the dataset\'s images and the target be one of its classes', () => {
  const a = cfg.attack!;
  const patch = (size: number, offset: [number, number], position: 'fixed' | 'random' = 'fixed') => ({ ...a, trigger: { ...a.trigger, size, offset, position } });
  assert.deepEqual(attackIssues(patch(28, [0, 0]), 'mnist'), []);
  assert.deepEqual(attackIssues(patch(29, [0, 0]), 'mnist').map((i) => i.path), ['trigger.size']);
  assert.deepEqual(attackIssues(patch(29, [0, 0]), 'cifar10'), [], '32x32 images');
  assert.deepEqual(attackIssues(patch(3, [25, 25]), 'mnist'), []);
  assert.deepEqual(attackIssues(patch(3, [26, 0]), 'mnist').map((i) => i.path), ['trigger.offset']);
  assert.deepEqual(attackIssues(patch(3, [26, 0], 'random'), 'mnist'), [], 'a random position has no offset');
  assert.match(attackIssues({ ...a, target: 10 }, 'mnist')[0].message, /must be a class of mnist, 0\.\.9, got 10/);
  assert.deepEqual(attackIssues({ ...a, target: 99 }, 'cifar100'), []);
  for (const r of [0, 1, -0.1]) assert.deepEqual(attackIssues({ ...a, poisonRatio: r }, 'mnist').map((i) => i.path), ['poisonRatio']);
  assert.deepEqual(attackIssues({ ...a, trigger: { kind: 'blend', alpha: 0 } }, 'mnist').map((i) => i.path), ['trigger.alpha']);
});

const flags: AttackFlags = { attack: 'patch', triggerSize: 3, pattern: 'white', position: 'fixed', offset: '0,0', alpha: 0.2, poisonRatio: 0.05, target: 0, allToAll: false, attackSeed: 1 };

test('attack flags are checked against the dataset, errors naming the flag', () => {
  assert.doesNotThrow(() => checkedAttack({ ...flags, triggerSize: 28 }, 'mnist'));
  assert.throws(() => checkedAttack({ ...flags, target: 10 }, 'mnist'), /^InvalidArgumentError: --target: must be a class of mnist, 0\.\.9, got 10$/);
  assert.throws(() => checkedAttack({ ...flags, triggerSize: 29 }, 'mnist'), /--trigger-size: must be an integer in 1\.\.28 \(mnist images are 28x28\), got 29/);
  assert.throws(() => checkedAttack({ ...flags, offset: '26,0' }, 'mnist'), /--offset: 26,0 puts the 3x3 patch outside the 28x28 mnist images/);
  assert.throws(() => checkedAttack({ ...flags, attack: 'blend', alpha: 0 }, 'mnist'), /--alpha: must be in \(0, 1\], got 0/);
  assert.throws(() => checkedAttack({ ...flags, poisonRatio: 1 }, 'mnist'), /--poison-ratio: must be in \(0, 1\), got 1/);
  assert.equal(flagOf('cleanFraction'), '--clean-fraction');
});

test('eval: a directory as --weights, a target that is no class, weights of another model', () => {
  assert.match(fails('eval', '--weights', root, ...dataFlags), new RegExp(`--weights ${root}: is a directory`));
  assert.throws(() => evalTarget({ weights: path.join(root, 'nope.safetensors'), dataset: 'mnist', model: 'small-cnn', width: 1, json: false, ...flags }),
    /--weights .*nope\.safetensors: no such file/);
  assert.match(fails('eval', '--weights', model, ...dataFlags, '--model', 'small-cnn', '--target', '10'), /--target: must be a class of mnist, 0\.\.9, got 10/);
  assert.throws(() => loadTargetModel({ dataset: 'mnist', model: 'resnet18', width: 4, weights: model }), /model\.safetensors: not weights of a resnet18 of width 4 for mnist/);
});

test('train: bad arguments are refused before the run directory is created or written', () => {
  const absent = path.join(root, 'absent'), empty = path.join(root, 'empty');
  fs.mkdirSync(empty);
  assert.match(fails('train', ...dataFlags, '--model', 'small-cnn', '--trigger-size', '100', '--out', absent),
    /--trigger-size: must be an integer in 1\.\.28 \(mnist images are 28x28\), got 100/);
  assert.match(fails('train', ...dataFlags, '--model', 'small-cnn', '--clean-fraction', '1', '--out', empty), /--clean-fraction must be a number in \(0, 1\), got '1'/);
  const patch = cfg.attack!.trigger as PatchSpec;
  const bad: [Partial<TrainConfig>, RegExp][] = [
    [{ attack: { ...cfg.attack!, trigger: { ...patch, offset: [99, 99] } } }, /'attack\.trigger\.offset': 99,99 puts the 3x3 patch outside/],
    [{ attack: { ...cfg.attack!, target: 10 } }, /'attack\.target': must be a class of mnist/],
    [{ cleanFraction: 1 }, /'cleanFraction': Number must be less than 1/],
  ];
  for (const [change, re] of bad) for (const out of [absent, empty]) assert.throws(() => train({ ...cfg, ...change }, out, { dataDir: data }), re);
  const broken = path.join(root, 'broken-data');
  fs.cpSync(data, broken, { recursive: true });
  fs.writeFileSync(path.join(broken, 'mnist', 'train-labels-idx1-ubyte'), 'not an IDX file');
  for (const out of [absent, empty]) assert.throws(() => train(cfg, out, { dataDir: broken }), /train-labels-idx1-ubyte/);
  assert.ok(!fs.existsSync(absent), 'no run directory');
  assert.deepEqual(fs.readdirSync(empty), [], 'nothing written');
});

test('eval and defend name a corrupt config.json or attack.json and the faulty field', () => {
  const notJson = brokenRun('bad-config', 'config.json', '{"dataset": "mnist",');
  assert.match(fails('eval', '--run', notJson), new RegExp(`${notJson}/config\\.json: not valid JSON`));
  assert.throws(() => readRun(notJson), /config\.json: not valid JSON/);
  const big = brokenRun('big-trigger', 'config.json', JSON.stringify({ ...cfg, attack: { ...cfg.attack, trigger: { ...cfg.attack!.trigger, size: 40 } } }));
  assert.throws(() => evalTarget({ run: big, ...flags } as EvalFlags), /config\.json: 'attack\.trigger\.size': must be an integer in 1\.\.28/);
  assert.throws(() => readRun(brokenRun('no-epochs', 'config.json', JSON.stringify({ ...cfg, epochs: undefined }))), /config\.json: 'epochs': missing/);
  assert.match(fails('defend', '--run', brokenRun('bad-attack', 'attack.json', '[1'), '--data-dir', data), /attack\.json: not valid JSON/);
  assert.throws(() => readRun(brokenRun('no-clean', 'attack.json', '{"poisonedIndices": [1]}')), /attack\.json: 'cleanIndices': missing/);
  assert.throws(() => readRun(brokenRun('neg-clean', 'attack.json', '{"poisonedIndices": [], "cleanIndices": [-1]}')),
    /attack\.json: 'cleanIndices\.0': Number must be greater than or equal to 0/);
});

test('defend --weights names the missing weights file, not the run', () => {
  const missing = path.join(root, 'nonexistent.safetensors');
  assert.match(fails('defend', '--run', runDir, '--weights', missing, '--data-dir', data), new RegExp(`--weights ${missing}: no such file`));
  assert.throws(() => readRun(runDir, root), new RegExp(`--weights ${root}: is a directory`));
});

test('train --resume with a checkpoint lacking metadata names the checkpoint and the missing keys, and writes nothing', () => {
  const dir = path.join(root, 'no-meta');
  fs.cpSync(runDir, dir, { recursive: true });
  const ckpt = path.join(dir, 'checkpoint.safetensors');
  saveSafetensors(ckpt, loadSafetensors(ckpt).tensors, { epoch: '1' });
  const before = new Map(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
  const msg = fails('train', ...dataFlags, '--model', 'small-cnn', '--epochs', '1', '--batch-size', '64', '--clean-fraction', '0.1', '--poison-ratio', '0.1',
    '--no-eval-each-epoch', '--out', dir, '--resume');
  assert.match(msg, new RegExp(`${ckpt}: metadata lacks 'stepCount', 'history'`));
  for (const [f, b] of before) assert.ok(b.equals(fs.readFileSync(path.join(dir, f))), `${f} unchanged`);
});

const GRID = `
name: grid
datasets: [cifar100, mnist]
attacks:
  - { name: a, triggerSize: 3 }
defenses: [ft]
`;

test('experiment configs: attacks checked against each dataset, names that are plain folder names', () => {
  assert.doesNotThrow(() => parseExperiment(GRID, 'x.yaml'));
  assert.throws(() => parseExperiment(GRID.replace('triggerSize: 3', 'triggerSize: 30'), 'x.yaml'),
    /x\.yaml: 'attacks\.0\.triggerSize': must be an integer in 1\.\.28 \(mnist images are 28x28\), got 30/);
  assert.throws(() => parseExperiment(GRID.replace('triggerSize: 3', 'triggerSize: 3, target: 50'), 'x.yaml'),
    /'attacks\.0\.target': must be a class of mnist, 0\.\.9, got 50/);
  assert.throws(() => parseExperiment(GRID.replace('triggerSize: 3', 'triggerSize: 3, offset: "30,0"'), 'x.yaml'), /'attacks\.0\.offset': 30,0 puts the 3x3 patch outside the 32x32 cifar100 images/);
  assert.throws(() => parseExperiment(GRID.replace('triggerSize: 3', 'poisonRatio: 1'), 'x.yaml'), /^Error: x\.yaml: 'attacks\.0\.poisonRatio': must be in \(0, 1\), got 1$/, 'said once, not per dataset');
  for (const name of ['../../x', '..', '.', 'a/b', '.hidden'])
    assert.throws(() => parseExperiment(GRID.replace('name: grid', `name: "${name}"`), 'x.yaml'), /'name': must be a plain folder name/, name);
  assert.throws(() => parseExperiment(GRID.replace('[ft]', '[{ method: ft, preset: "../x" }]'), 'x.yaml'), /'defenses\.0\.preset': must be a preset name/);

  const file = path.join(root, 'escape.yaml'), out = path.join(root, 'exp-out');
  fs.writeFileSync(file, GRID.replace('name: grid', 'name: ../../escape'));
  assert.match(fails('experiment', file, '--out', out, '--data-dir', data), /escape\.yaml: 'name': must be a plain folder name/);
  assert.ok(!fs.existsSync(out));
});

test('the top-level error line: first line of a multi-line message; the stack with VARDEFENSE_DEBUG', () => {
  const e = new Error('libtorch: shape mismatch\nException raised from foo at bar.cpp:12\nframe #0: baz');
  assert.equal(errorText(e, false), 'error: libtorch: shape mismatch (VARDEFENSE_DEBUG=1 shows the rest)');
  assert.equal(errorText(new Error('bad --x'), false), 'error: bad --x');
  assert.equal(errorText('a string', false), 'error: a string');
  assert.match(errorText(e, true), /frame #0: baz\n\s+at /);
  const r = spawnSync(process.execPath, [cli, 'eval', '--weights', root], { encoding: 'utf8', env: { ...process.env, VARDEFENSE_DEBUG: '1' } });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /is a directory, not a file\n\s+at assertFile/);
});

test('cleanup', () => fs.rmSync(root, { recursive: true }));
