// Weights and datasets that do not fit, or are hostile, given to `vardefense eval`: the error names
// the file (and the keys and shapes for a model mismatch); the CLI exits non-zero quickly and small.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { loadModel as loadTargetModel } from '../../src/pipeline/model';
import { idxBytes, writeSyntheticIdx } from '../../src/data/synthetic';
import { createModel } from '../../src/models';
import { nn, saveSafetensors, Tensor, zeros } from '../../src/torch';
import { repoRoot, tmpDir } from '../helpers';
import { statePickle, torchZip } from '../hostile-files';

const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const smallCnn = (): nn.Module => createModel({ name: 'small-cnn', inChannels: 1, numClasses: 10, imageSize: 28 });

test('weights that do not fit the model name the file, the keys and the shapes', () => {
  const dir = tmpDir('fit');
  const model = smallCnn();
  const sd = model.stateDict();
  const keys = [...sd.keys()];
  const target = (file: string): { dataset: 'mnist'; model: 'small-cnn'; weights: string } => ({ dataset: 'mnist', model: 'small-cnn', weights: file });

  const missing = path.join(dir, 'missing.safetensors');
  saveSafetensors(missing, new Map([...sd].filter(([k]) => k !== keys[0])));
  assert.throws(() => loadTargetModel(target(missing)), new RegExp(`^Error: ${missing}: .*missing keys \\[${keys[0].replace('.', '\\.')}\\], unexpected keys \\[\\]`));

  const extra = path.join(dir, 'extra.safetensors');
  saveSafetensors(extra, new Map<string, Tensor>([...sd, ['stray.weight', zeros([1])]]));
  assert.throws(() => loadTargetModel(target(extra)), new RegExp(`${extra}: .*unexpected keys \\[stray\\.weight\\]`));

  const shape = sd.get(keys[0])!.shape;
  const wrong = path.join(dir, 'wrong.safetensors');
  const wrongShape = [shape[0] + 1, ...shape.slice(1)];
  saveSafetensors(wrong, new Map<string, Tensor>([...sd].map(([k, v]) => [k, k === keys[0] ? zeros(wrongShape) : v])));
  assert.throws(() => loadTargetModel(target(wrong)), (e: Error) => e.message.startsWith(`${wrong}: `) && e.message.includes(`'${keys[0]}' has shape [${wrongShape}] but the model expects [${shape}]`));

  // the same through a torch.save archive: one tensor of the wrong shape, everything else missing
  const pt = path.join(dir, 'wrong.pt');
  fs.writeFileSync(pt, torchZip(statePickle([{ key: keys[0], storage: '0', numel: 6, offset: 0, size: [6], stride: [1] }]), { 0: Buffer.alloc(24) }));
  assert.throws(() => loadTargetModel(target(pt)), new RegExp(`${pt}: does not fit a small-cnn for mnist: loadStateDict: missing keys \\[.*, \\.\\.\\. \\d+ more|${pt}: .*missing keys`));
  model.dispose();
  fs.rmSync(dir, { recursive: true });
});

/** Runs the CLI and returns its exit status, stderr, wall time and peak RSS (from a preloaded exit hook). */
function runCli(dir: string, args: string[]): { status: number | null; stderr: string; ms: number; maxRssMB: number } {
  const hook = path.join(dir, 'maxrss.js');
  fs.writeFileSync(hook, "process.on('exit', () => process.stderr.write(`\\nmaxRSS ${process.resourceUsage().maxRSS}\\n`));\n");
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--require', hook, cli, ...args], { encoding: 'utf8', timeout: 60000 });
  const m = /maxRSS (\d+)/.exec(r.stderr);
  return { status: r.status, stderr: r.stderr, ms: Date.now() - t0, maxRssMB: m ? Number(m[1]) / 1024 : Infinity };
}

test('end to end: hostile weights and datasets make `vardefense eval` fail fast, small, naming the file', (t) => {
  const dir = tmpDir('hostilecli');
  const data = path.join(dir, 'data');
  writeSyntheticIdx(path.join(data, 'mnist'), { train: 10, test: 10 });
  const model = smallCnn();
  const good = path.join(dir, 'good.safetensors');
  saveSafetensors(good, model.stateDict());
  model.dispose();

  const stride0 = path.join(dir, 'stride0.pt');
  fs.writeFileSync(stride0, torchZip(statePickle([{ storage: '0', numel: 1, offset: 0, size: [1 << 20, 1 << 20], stride: [0, 0] }]), { 0: Buffer.alloc(4) }));
  const badSt = path.join(dir, 'bad.safetensors');
  const header = Buffer.from('{"w":{"dtype":"constructor","shape":[2],"data_offsets":[0,8]}}');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(badSt, Buffer.concat([len, header, Buffer.alloc(8)]));
  const bombDir = path.join(dir, 'bomb');
  fs.mkdirSync(path.join(bombDir, 'mnist'), { recursive: true });
  const bomb = path.join(bombDir, 'mnist', 't10k-images-idx3-ubyte.gz');
  const zeros1MB = zlib.gzipSync(Buffer.alloc(1 << 20), { level: 9 });
  fs.writeFileSync(bomb, Buffer.concat([zlib.gzipSync(idxBytes([10000, 28, 28], new Uint8Array(0))), ...new Array(2000).fill(zeros1MB)]));
  fs.copyFileSync(path.join(data, 'mnist', 't10k-labels-idx1-ubyte'), path.join(bombDir, 'mnist', 't10k-labels-idx1-ubyte'));

  const cases: [string, string, string, RegExp][] = [
    ['stride-0 torch.save view', stride0, data, /more than its 1-element storage/],
    ['safetensors with an unknown dtype', badSt, data, /unknown dtype 'constructor' for tensor 'w'/],
    ['gzip bomb test images', good, bombDir, /decompresses to more than the 7840016 bytes its IDX header declares/],
  ];
  const base = ['eval', '--dataset', 'mnist', '--model', 'small-cnn', '--attack', 'none'];
  for (const [label, weights, dataDir, re] of cases) {
    const r = runCli(dir, [...base, '--weights', weights, '--data-dir', dataDir]);
    const named = label.startsWith('gzip') ? bomb : weights;
    assert.notEqual(r.status, 0, `${label}: exit status`);
    assert.ok(r.stderr.includes(named), `${label}: stderr does not name ${named}: ${r.stderr}`);
    assert.match(r.stderr, re, label);
    assert.ok(r.ms < 20000, `${label}: took ${r.ms} ms`);
    assert.ok(r.maxRssMB < 1536, `${label}: peak RSS ${r.maxRssMB.toFixed(0)} MB`);
    t.diagnostic(`${label}: exit ${r.status}, ${r.ms} ms, peak RSS ${r.maxRssMB.toFixed(0)} MB`);
  }
  // the same data with the real test images evaluates: the failures above are the files' doing
  const ok = runCli(dir, [...base, '--weights', good, '--data-dir', data]);
  assert.equal(ok.status, 0, ok.stderr);
  fs.rmSync(dir, { recursive: true });
});
