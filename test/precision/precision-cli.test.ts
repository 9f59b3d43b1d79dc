// --precision through the CLI: train, eval and defend in bf16 on a small synthetic run; what each
// records (config.json, eval's JSON, report.json with its digest, environment and weights' metadata).
// Skipped where bf16 is refused (the refusal itself is tested in precision.test.ts).
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as T from '../../src/torch';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { runCli, tmpDir } from '../helpers';

const support = T.bf16Support();

test('train, eval and defend with --precision bf16 record it; fp32 configs stay as before; bf16 and fp32 reports are not reused for each other',
  { skip: support.ok ? false : `bf16 refused here: ${support.reason}` }, () => {
    const root = tmpDir('bf16-cli');
    const data = path.join(root, 'data');
    writeSyntheticIdx(path.join(data, 'mnist'), { train: 1200, test: 200 });
    const common = ['--dataset', 'mnist', '--data-dir', data, '--model', 'resnet18', '--width', '4', '--epochs', '1', '--batch-size', '64', '--no-eval-each-epoch'];
    const bf = path.join(root, 'bf16'), fp = path.join(root, 'fp32');
    const out = JSON.parse(runCli('train', ...common, '--precision', 'bf16', '--out', bf, '--json')) as { config: { precision?: string }; metrics: { acc: number } };
    assert.equal(out.config.precision, 'bf16');
    assert.equal(JSON.parse(fs.readFileSync(path.join(bf, 'config.json'), 'utf8')).precision, 'bf16');
    const w = T.loadSafetensors(path.join(bf, 'model.safetensors'));
    assert.equal(w.tensors.get('conv1.weight')!.dtype, 'float32', 'master weights are saved in fp32');
    assert.match(w.metadata.config, /"precision": "bf16"/);
    runCli('train', ...common, '--out', fp);
    assert.ok(!('precision' in JSON.parse(fs.readFileSync(path.join(fp, 'config.json'), 'utf8'))), 'an fp32 config has no precision key (as before the flag)');

    const ev = JSON.parse(runCli('eval', '--run', bf, '--data-dir', data, '--precision', 'bf16', '--json')) as { precision: string; acc: number };
    assert.equal(ev.precision, 'bf16');
    assert.ok(ev.acc >= 0 && ev.acc <= 1);
    assert.equal((JSON.parse(runCli('eval', '--run', bf, '--data-dir', data, '--json')) as { precision: string }).precision, 'fp32');

    const defendArgs = ['defend', '--run', bf, '--data-dir', data, '--method', 'ft,vardefense:paper', '--set', 'epochs=1', '--set', 'batchSize=50', '--no-verdict'];
    runCli(...defendArgs, '--precision', 'bf16', '--out', path.join(root, 'd'));
    const r16 = JSON.parse(fs.readFileSync(path.join(root, 'd', 'ft', 'report.json'), 'utf8'));
    assert.equal(r16.precision, 'bf16');
    assert.equal(r16.environment.precision, 'bf16');
    assert.equal(r16.environment.bf16Hardware, support.hardware);
    assert.equal(T.loadSafetensors(path.join(root, 'd', 'ft', 'model.safetensors')).metadata.precision, 'bf16');
    assert.equal(JSON.parse(fs.readFileSync(path.join(root, 'd', 'vardefense-paper', 'report.json'), 'utf8')).precision, 'bf16');
    // the same inputs in fp32: the bf16 report is not reused, and the fp32 one records fp32
    runCli(...defendArgs, '--out', path.join(root, 'd'), '--json');
    const r32 = JSON.parse(fs.readFileSync(path.join(root, 'd', 'ft', 'report.json'), 'utf8'));
    assert.equal(r32.precision, 'fp32');
    assert.notEqual(r32.inputDigest, r16.inputDigest);
    fs.rmSync(root, { recursive: true });
  });

test('experiment --precision bf16: the cells train and defend in bf16 and record it, apart from the fp32 cells',
  { skip: support.ok ? false : `bf16 refused here: ${support.reason}` }, () => {
    const root = tmpDir('bf16-experiment');
    const data = path.join(root, 'data');
    writeSyntheticIdx(path.join(data, 'mnist'), { train: 1200, test: 100 });
    const config = path.join(root, 'grid.yaml');
    fs.writeFileSync(config, 'name: g\ndatasets: [mnist]\nmodel: { name: resnet18, width: 4 }\ntrain: { epochs: 1, batchSize: 64 }\nverdict: false\n' +
      'attacks:\n  - { name: patch3, attack: patch, triggerSize: 3 }\ndefenses:\n  - { method: ft, set: { epochs: 1 } }\n');
    const out = path.join(root, 'out');
    const [r] = JSON.parse(runCli('experiment', config, '--out', out, '--data-dir', data, '--precision', 'bf16', '--json')) as { cell: string; dir: string; kernels: string }[];
    assert.match(r.kernels, /bf16 autocast/);
    assert.equal(JSON.parse(fs.readFileSync(path.join(r.dir, 'report.json'), 'utf8')).precision, 'bf16');
    const [model] = fs.readdirSync(path.join(out, 'models'));
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'models', model, 'config.json'), 'utf8')).precision, 'bf16');
    const [f] = JSON.parse(runCli('experiment', config, '--out', out, '--data-dir', data, '--json')) as { cell: string }[];
    assert.notEqual(f.cell, r.cell, 'the fp32 cell is another cell');
    assert.equal(fs.readdirSync(path.join(out, 'models')).length, 2, 'and another model');
    fs.rmSync(root, { recursive: true });
  });
