// The defender's case end to end: a backdoored ResNet-18 trained and saved by PyTorch (torch.save), purified
// by `defend` with no run directory of ours (clean images drawn from the training split), and evaluated by
// `eval` with the same flags to the accuracy PyTorch measured itself.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { python, runCli, tmpDir } from '../helpers';

const run = runCli;
const pythonBin = process.env.VARDEFENSE_PYTHON ?? '/usr/bin/python3';
const hasTorch = spawnSync(pythonBin, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

test('defend and eval a PyTorch-trained backdoored model from --weights, without a run directory',
  { skip: hasTorch ? false : `${pythonBin} cannot import torch (apt install python3-torch)` }, () => {
    const dir = tmpDir('byo');
    writeSyntheticIdx(path.join(dir, 'mnist'), { train: 2000, test: 500 });
    const ref = JSON.parse(python('torch_ref.py', 'trained_model', dir).trim()) as { acc: number; asr: number };
    assert.ok(ref.acc > 0.5 && ref.asr > 0.5, `PyTorch's model learned the task and the backdoor (ACC ${ref.acc}, ASR ${ref.asr})`);
    const model = ['--weights', path.join(dir, 'pytorch.pt'), '--model', 'resnet18', '--width', '4', '--dataset', 'mnist', '--data-dir', dir];
    const trigger = ['--attack', 'patch', '--trigger-size', '3'];

    const evaluated = JSON.parse(run('eval', ...model, ...trigger, '--json')) as { acc: number; asr: number };
    assert.ok(Math.abs(evaluated.acc - ref.acc) < 1e-4, `eval ACC ${evaluated.acc} vs PyTorch ${ref.acc}`);
    assert.ok(Math.abs(evaluated.asr - ref.asr) < 1e-4, `eval ASR ${evaluated.asr} vs PyTorch ${ref.asr}`);
    // the same weights fed as if trained with another normalisation: PyTorch's numbers under it, not the
    // default's. A far one (background at -9, ink at 1), so that it changes the numbers on every CPU: under
    // AVX2 kernels PyTorch's model kept ACC 1 and ASR 1 under mean 0.2 and std 0.5
    const other = JSON.parse(python('torch_ref.py', 'eval_norm', dir, '0.9', '0.1').trim()) as { acc: number; asr: number };
    const renormed = JSON.parse(run('eval', ...model, ...trigger, '--norm-mean', '0.9', '--norm-std', '0.1', '--json')) as { acc: number; asr: number };
    assert.ok(Math.abs(renormed.acc - other.acc) < 1e-4 && Math.abs(renormed.asr - other.asr) < 1e-4, `--norm-mean/--norm-std: ${JSON.stringify(renormed)} vs PyTorch ${JSON.stringify(other)}`);
    assert.ok(Math.abs(other.acc - ref.acc) > 0.01 || Math.abs(other.asr - ref.asr) > 0.01, `another normalisation changes the numbers (${JSON.stringify(other)} vs ${JSON.stringify(ref)}), so the parity says something`);
    assert.throws(() => run('eval', ...model, '--norm-mean', '0.2,0.3', '--norm-std', '0.5,0.5'), /--norm-mean\/--norm-std: mnist images have 1 channel\(s\): give 1 mean and std value\(s\), got 2 and 2/);
    assert.throws(() => run('eval', ...model, '--norm-mean', '0.2'), /--norm-mean: give --norm-mean and --norm-std together/);
    assert.throws(() => run('eval', ...model, '--norm-mean', '0.2', '--norm-std', '0'), /stds positive/);
    const clean = JSON.parse(run('eval', ...model, '--attack', 'none', '--json')) as { acc: number; asr: number | null };
    assert.equal(clean.asr, null, 'no trigger, no ASR');

    const out = path.join(dir, 'defenses');
    const args = ['defend', ...model, '--clean-size', '300', '--clean-seed', '2', '--method', 'ft', '--set', 'epochs=1', '--out', out, '--json', '--no-verdict'];
    const rows = JSON.parse(run(...args, ...trigger)) as { method: string; before: { acc: number; asr: number }; after: { acc: number; asr: number } }[];
    assert.deepEqual(rows.map((r) => r.method), ['ft']);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'ft', 'report.json'), 'utf8'));
    assert.ok(Math.abs(report.before.acc - ref.acc) < 1e-4 && Math.abs(report.before.asr - ref.asr) < 1e-4, 'before: the model PyTorch trained');
    assert.ok(report.after.acc >= 0 && report.after.acc <= 1 && report.after.asr >= 0 && report.after.asr <= 1);
    assert.deepEqual(rows[0].after, report.after);
    assert.equal(report.source.clean.size, 300);
    assert.equal(report.source.target.model, 'resnet18');
    assert.equal(report.report.options.epochs, 1);
    // defend with the model's own normalisation: its before is PyTorch's under it, the norm recorded
    const normed = JSON.parse(run(...args.map((a) => (a === out ? `${out}-norm` : a)), ...trigger, '--norm-mean', '0.9', '--norm-std', '0.1')) as { before: { acc: number; asr: number } }[];
    assert.ok(Math.abs(normed[0].before.acc - other.acc) < 1e-4 && Math.abs(normed[0].before.asr - other.asr) < 1e-4);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(`${out}-norm`, 'ft', 'report.json'), 'utf8')).source.target.norm, { mean: [0.9], std: [0.1] });

    // no trigger: still purified, clean accuracy only; a report computed with a trigger is not reused for it
    const plain = JSON.parse(run(...args)) as { before: { acc: number; asr: number | null }; after: { asr: number | null } }[];
    assert.ok(Math.abs(plain[0].before.acc - ref.acc) < 1e-4);
    assert.equal(plain[0].before.asr, null);
    assert.equal(plain[0].after.asr, null);

    assert.throws(() => run('defend', ...model, '--clean-size', '5000', '--out', out), /--clean-size: 5000 is larger than the mnist training split \(2000 images\)/);
    assert.throws(() => run('defend', ...model.map((a) => (a === '4' ? '8' : a)), '--clean-size', '10', '--out', out), /pytorch\.pt: not weights of a resnet18 of width 8 for mnist/);
    assert.throws(() => run('defend', ...model.slice(0, 2), '--clean-size', '10', '--out', out), /missing --model <arch>, --dataset <name>/);
    fs.rmSync(dir, { recursive: true });
  });
