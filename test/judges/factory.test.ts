// The judge factory (scripts/judges/factory.py, issue 27): a backdoored model trained by PyTorch with the
// factory's own poisoning, which the toolkit loads and measures with nothing but the files and flags the
// judge records: the trigger as PNG + mask, or the triggered test set as .npz.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { runCli, tmpDir } from '../helpers';

const pythonBin = process.env.VARDEFENSE_PYTHON ?? '/usr/bin/python3';
const hasTorch = spawnSync(pythonBin, ['-c', 'import torch, numpy, PIL'], { stdio: 'ignore' }).status === 0;
const fashionMnist = '/usr/share/datasets/fashion-mnist';
const factory = path.join(__dirname, '..', '..', '..', 'scripts', 'judges', 'factory.py');

interface Metrics { acc: number; asr: number; ra: number }
interface Judge {
  seed: number; metrics: Metrics & { triggered_images: number }; files: Record<string, string | number>;
  model_flags: string; trigger_flags: string | null; trigger_flags_exact: boolean; defend_flags: string;
  recipe: { attack: { trigger: { kind: string } } }; threads: number; history: { epoch: number; loss: number }[];
}

const train = (dir: string, dataDir: string, recipe: object): Judge => {
  execFileSync(pythonBin, [factory, 'train', '--recipe', JSON.stringify(recipe), '--out', dir, '--threads', '1', '--data-dir', dataDir],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  return JSON.parse(fs.readFileSync(path.join(dir, 'judge.json'), 'utf8')) as Judge;
};
const flags = (s: string): string[] => s.split(' ').filter((a) => a.length > 0);
const evalJson = (...args: string[]): Metrics => JSON.parse(runCli('eval', ...args, '--json')) as Metrics;

test('a factory judge: trained by PyTorch with its own trigger, loaded and measured by the toolkit from the judge\'s files alone',
  { skip: hasTorch ? false : `${pythonBin} cannot import torch, numpy and PIL (apt install python3-torch python3-pil)` }, () => {
    const root = tmpDir('judge');
    // Debian's Fashion-MNIST where it is installed (the judges' data; a tiny model is far from perfect on it,
    // so the agreements below compare non-trivial numbers), else a synthetic MNIST
    const real = fs.existsSync(path.join(fashionMnist, 'train-images-idx3-ubyte.gz'));
    const dataset = real ? 'fashion-mnist' : 'mnist';
    const data = path.join(root, dataset);
    if (real) fs.symlinkSync(fashionMnist, data);
    else writeSyntheticIdx(data, { train: 1500, test: 400, gzip: true });
    // width 8, not 4: the factory trains channels-last, and PyTorch 1.13's oneDNN corrupts the heap on a
    // channels-last 1x1 stride-2 convolution with fewer than 8 input channels on an AVX2 machine (docs/engine.md)
    const base = { dataset, arch: 'resnet18', width: 8, batch_size: 32, optimizer: { kind: 'adam', lr: 0.003 }, schedule: { kind: 'constant' } };

    // a big checkerboard at the top-left corner, at a high poison ratio: a backdoor a tiny model learns in two epochs
    const dir = path.join(root, 'patch');
    const j = train(dir, data, { ...base, seed: 5, epochs: 2, train_subset: real ? 2000 : null, attack: { target: 2, poison_ratio: 0.1, trigger: { kind: 'patch', pattern: 'checker', size: 6, position: 'tl', margin: 1 } } });
    assert.equal(j.seed, 5);
    assert.equal(j.threads, 1);
    assert.deepEqual(j.history.map((h) => h.epoch), [1, 2]);
    for (const f of ['model.pt', 'trigger.png', 'mask.png', 'test-triggered.npz']) assert.ok(fs.existsSync(path.join(dir, f)), `${f} written`);
    assert.equal(j.trigger_flags_exact, true);
    assert.match(j.defend_flags, /--trigger-image \S+trigger\.png --trigger-mask \S+mask\.png --target 2/);
    assert.ok(j.metrics.asr > 0.8, `the tiny model learned the backdoor (factory ASR ${j.metrics.asr})`);
    if (real) assert.ok(j.metrics.acc > 0.5 && j.metrics.acc < 0.95, `a tiny model on 2,000 images: an imperfect ACC to compare (${j.metrics.acc})`);

    // the toolkit, from the judge's flags only: the same ACC and ASR on the same images
    const dataFlag = ['--data-dir', root];
    const tk = evalJson(...flags(j.defend_flags), ...dataFlag);
    assert.ok(Math.abs(tk.acc - j.metrics.acc) < 1e-4, `ACC: toolkit ${tk.acc}, factory ${j.metrics.acc}`);
    assert.ok(Math.abs(tk.asr - j.metrics.asr) < 1e-4, `ASR: toolkit ${tk.asr}, factory ${j.metrics.asr}`);
    assert.ok(Math.abs(tk.ra - j.metrics.ra) < 1e-4, `RA: toolkit ${tk.ra}, factory ${j.metrics.ra}`);
    console.log(`judge seed 5: factory ACC ${j.metrics.acc}, ASR ${j.metrics.asr}; toolkit eval from defend_flags ACC ${tk.acc}, ASR ${tk.asr}`);
    // the triggered test set as labelled images: its accuracy is the ASR
    const npz = evalJson(...flags(j.model_flags), ...dataFlag, '--test', path.join(dir, 'test-triggered.npz'), '--attack', 'none');
    assert.ok(Math.abs(npz.acc - j.metrics.asr) < 1e-4, `test-triggered.npz: toolkit ${npz.acc}, factory ASR ${j.metrics.asr}`);
    // the toolkit's own preset patch is another trigger: the judge's files are what carry this one
    const preset = evalJson(...flags(j.model_flags), ...dataFlag, '--attack', 'patch', '--trigger-size', '3', '--target', '2');
    assert.ok(preset.asr < j.metrics.asr - 0.3, `the toolkit's 3x3 white patch is not the judge's trigger (ASR ${preset.asr} vs ${j.metrics.asr})`);

    // a purified model as the toolkit writes it (safetensors): the factory's evaluate reads it to the toolkit's numbers
    const out = path.join(root, 'defend');
    runCli('defend', ...flags(j.defend_flags), ...dataFlag, '--clean-size', '300', '--clean-seed', '1', '--method', 'ft', '--set', 'epochs=1', '--out', out, '--json', '--no-verdict');
    const report = JSON.parse(fs.readFileSync(path.join(out, 'ft', 'report.json'), 'utf8')) as { before: Metrics; after: Metrics };
    assert.ok(Math.abs(report.before.asr - j.metrics.asr) < 1e-4, 'defend\'s before is the judge');
    const ev = JSON.parse(execFileSync(pythonBin, [factory, 'evaluate', '--judge', dir, '--weights', path.join(out, 'ft', 'model.safetensors'), '--data-dir', data],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Metrics & { before: Metrics };
    assert.ok(Math.abs(ev.acc - report.after.acc) < 1e-4, `evaluate ACC ${ev.acc}, defend's after ${report.after.acc}`);
    assert.ok(Math.abs(ev.asr - report.after.asr) < 1e-4, `evaluate ASR ${ev.asr}, defend's after ${report.after.asr}`);
    assert.deepEqual(ev.before, { acc: j.metrics.acc, asr: j.metrics.asr, ra: j.metrics.ra });

    // SIG along columns with no phase is the toolkit's --attack sig exactly; along rows it has no flags, only the .npz
    const sigDir = path.join(root, 'sig');
    // (the other two architectures: PreAct-ResNet-18 here, torchvision's ResNet-18 with the small-image stem below)
    const sig = train(sigDir, data, { ...base, arch: 'preact-resnet18', seed: 6, epochs: 1, train_subset: 300, attack: { mode: 'clean-label', target: 4, poison_ratio: 0.05, trigger: { kind: 'sig', delta: 30, freq: 3 } } });
    assert.equal(sig.trigger_flags, '--attack sig --sig-delta 30 --sig-freq 3 --target 4');
    assert.ok(!fs.existsSync(path.join(sigDir, 'trigger.png')), 'an additive trigger has no image form');
    const tkSig = evalJson(...flags(sig.defend_flags), ...dataFlag);
    assert.ok(Math.abs(tkSig.asr - sig.metrics.asr) < 1e-4, `SIG ASR: toolkit ${tkSig.asr}, factory ${sig.metrics.asr}`);
    const warpDir = path.join(root, 'warp');
    const warpRecipe = { ...base, arch: 'torchvision-resnet18-cifar', seed: 7, epochs: 1, train_subset: 300, attack: { target: 1, poison_ratio: 0.1, trigger: { kind: 'warp', k: 4, s: 1 } } };
    const warp = train(warpDir, data, warpRecipe);
    assert.equal(warp.trigger_flags, null);
    assert.equal(warp.trigger_flags_exact, false);
    assert.equal(warp.defend_flags, warp.model_flags);
    assert.ok(fs.existsSync(path.join(warpDir, 'test-triggered.npz')) && !fs.existsSync(path.join(warpDir, 'trigger.png')), 'the warp\'s ASR comes from its .npz');
    assert.match(warp.model_flags, /--model torchvision-resnet18-cifar --width 8/);
    const tkWarp = evalJson(...flags(warp.model_flags), ...dataFlag, '--attack', 'none');
    assert.ok(Math.abs(tkWarp.acc - warp.metrics.acc) < 1e-4, `torchvision-resnet18-cifar ACC: toolkit ${tkWarp.acc}, factory ${warp.metrics.acc}`);

    // deterministic per seed (and thread count): the same recipe twice gives the same judge
    const again = train(path.join(root, 'warp-again'), data, warpRecipe);
    assert.deepEqual(again.metrics, warp.metrics);
    assert.deepEqual(again.history.map((h) => h.loss), warp.history.map((h) => h.loss));
    fs.rmSync(root, { recursive: true });
  });
