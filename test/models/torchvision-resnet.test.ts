// Parity with torchvision (Debian's python3-torchvision): resnet18 state dicts saved by torch.save
// load by name into TorchvisionResNet18 and give the same logits, for both stems and 1 or 3 channels.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as T from '../../src/torch';
import { createModel } from '../../src/models';
import { TorchvisionResNet18 } from '../../src/models/torchvision-resnet';
import { defenseMethod, DEFENSE_NAMES, resolveOptions } from '../../src/defenses/registry';
import { holdOut } from '../../src/defenses/common';
import { assertClose, maxAbsDiff, python, tmpDir } from '../helpers';

test('torchvision resnet18 state dicts load by name and give torchvision\'s logits (eval and train mode)', () => {
  const dir = tmpDir('tvresnet');
  process.env.ZOO_THREADS = String(T.getNumThreads()); // PyTorch on as many threads as the toolkit
  python('torchvision_ref.py', dir);
  const ref = T.loadSafetensors(path.join(dir, 'ref.safetensors')).tensors;
  const r = (k: string): T.Tensor => { const t = ref.get(k); assert.ok(t, `reference lacks ${k}`); return t; };
  for (const [name, stem, inChannels] of [['imagenet3', 'imagenet', 3], ['cifar3', 'cifar', 3], ['imagenet1', 'imagenet', 1], ['cifar1', 'cifar', 1]] as const) {
    for (const channelsLast of [true, false]) {
      const model = new TorchvisionResNet18({ stem, inChannels, numClasses: 10, channelsLast });
      model.loadStateDict(T.loadTorchStateDict(path.join(dir, `${name}.pt`))); // strict: every key matches both ways
      const x = r(`${name}.x`);
      model.eval();
      const eval_ = T.noGrad(() => model.call(x));
      assertClose(eval_, r(`${name}.logits_eval`), 1e-4, `${name} eval logits`);
      // the logits are far from zero and differ between the images: a model that ignored weights would fail
      assert.ok(maxAbsDiff(eval_.select(0, 0), eval_.select(0, 1)) > 1e-2, `${name}: both images give the same logits`);
      model.train();
      // batch statistics of 2 images over layer4's 1x1 maps (the 7x7 stem on 32x32 inputs) amplify float
      // reassociation (channels-last against PyTorch's contiguous model: 2.9e-3 on imagenet3, 1.3e-2 on
      // imagenet1), so train mode is compared with PyTorch's model in the same layout
      assertClose(T.noGrad(() => model.call(x)), r(`${name}.logits_train${channelsLast ? '_cl' : ''}`), 1e-4, `${name} train logits`);
      assertClose(model.bn1.runningMean, r(`${name}.running_mean_after_train`), 1e-5, `${name} bn1 running mean after one train-mode forward`);
      model.dispose();
    }
  }
  fs.rmSync(dir, { recursive: true });
});

test('torchvision resnet18: module names, the stem choice, and the spatial sizes for 28x28 inputs', () => {
  const names = (m: T.nn.Module): string[] => [...m.stateDict().keys()];
  const imagenet = createModel({ name: 'torchvision-resnet18', inChannels: 1, numClasses: 10, imageSize: 28 });
  const cifar = createModel({ name: 'torchvision-resnet18-cifar', inChannels: 3, numClasses: 10, imageSize: 32 });
  assert.deepEqual(names(imagenet), names(cifar));
  for (const k of ['conv1.weight', 'bn1.running_var', 'layer1.0.conv1.weight', 'layer2.0.downsample.0.weight', 'layer2.0.downsample.1.num_batches_tracked', 'layer4.1.bn2.bias', 'fc.weight', 'fc.bias'])
    assert.ok(names(imagenet).includes(k), k);
  assert.ok(!names(imagenet).some((k) => k.startsWith('layer1.0.downsample') || k.startsWith('layer1.1.downsample')), 'no downsample where the shape is kept');
  assert.equal(names(imagenet).length, 122, 'torchvision resnet18 has 122 state-dict entries');
  assert.deepEqual((imagenet as TorchvisionResNet18).conv1.weight.shape, [64, 1, 7, 7]);
  assert.deepEqual((cifar as TorchvisionResNet18).conv1.weight.shape, [64, 3, 3, 3]);
  // 28x28: imagenet stem 28 -> 14 (conv1) -> 7 (max-pool) -> 7, 4, 2, 1 (layer1-4); cifar stem: 28, 14, 7, 4
  const sizes = (m: T.nn.Module, c: number): number[] => {
    const seen: number[] = [];
    const hooks = ['layer1', 'layer2', 'layer3', 'layer4'].map((l) => m.getModule(l).registerForwardHook((_m, _x, y) => { seen.push(y.shape[2]); }));
    m.eval();
    const out = T.noGrad(() => m.call(T.zeros([1, c, 28, 28])));
    assert.deepEqual(out.shape, [1, 10]);
    hooks.forEach((h) => h.remove());
    return seen;
  };
  assert.deepEqual(sizes(imagenet, 1), [7, 4, 2, 1]);
  const cifar1 = createModel({ name: 'torchvision-resnet18-cifar', inChannels: 1, numClasses: 10, imageSize: 28 });
  assert.deepEqual(sizes(cifar1, 1), [28, 14, 7, 4]);
});

test('every defense runs on both torchvision variants (tiny widths, one short epoch, random data) and keeps the state-dict names', () => {
  T.manualSeed(0);
  const n = 60;
  const clean = { images: T.randint(0, 256, [n, 1, 16, 16]).to('uint8'), labels: T.randint(0, 4, [n]), classes: 4 };
  const { train, val } = holdOut(clean, 0.2, 1);
  const data = { train, val, norm: { mean: [0.5], std: [0.25] } };
  const short: Record<string, number> = { epochs: 1, teacherEpochs: 1, iterations: 3, rounds: 1, batchSize: 16 };
  for (const name of DEFENSE_NAMES) for (const model of ['torchvision-resnet18', 'torchvision-resnet18-cifar'] as const) {
    const m = createModel({ name: model, width: 4, inChannels: 1, numClasses: 4, imageSize: 16 });
    const before = [...m.stateDict().keys()];
    const method = defenseMethod(name);
    const keys = Object.keys(method.presets.default);
    const opts = resolveOptions(method, 'default', Object.fromEntries(Object.entries(short).filter(([k]) => keys.includes(k))));
    const rep = method.run(m, data, opts as never, {});
    assert.ok(Number.isFinite(rep.valAccBefore) && Number.isFinite(rep.valAccAfter), `${name} on ${model}`);
    assert.deepEqual([...m.stateDict().keys()], before, `${name} on ${model}: state-dict names`);
    m.dispose();
  }
});
