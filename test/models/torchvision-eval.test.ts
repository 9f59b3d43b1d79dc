// The path a user takes: a torchvision model saved by PyTorch (torch.save of its state dict, 1 input
// channel for Fashion-MNIST's 28x28 images) evaluated by `vardefense eval --weights --model <name>`
// gives PyTorch's accuracy to the image, per class too.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { python, runCli, tmpDir } from '../helpers';

test('eval --weights <torch.save state dict> --model <torchvision name> gives PyTorch\'s accuracy to the image', () => {
  const dir = tmpDir('tveval');
  try {
    writeSyntheticIdx(path.join(dir, 'fashion-mnist'), { train: 10, test: 300 });
    const names = ['mobilenet_v3_small', 'efficientnet_b0'];
    const ref = JSON.parse(python('torchvision_eval_ref.py', dir, ...names)) as Record<string, { acc: number; perClassAcc: number[] }>;
    for (const name of names) {
      const ev = JSON.parse(runCli('eval', '--weights', path.join(dir, `${name}.pt`), '--model', name, '--dataset', 'fashion-mnist', '--data-dir', dir, '--attack', 'none', '--json')) as { acc: number; perClassAcc: number[]; testImages: number };
      assert.equal(ev.testImages, 300);
      // 300 images: accuracies are multiples of 1/300, so equal up to float formatting means the same count
      assert.ok(Math.abs(ev.acc - ref[name].acc) < 1e-6, `${name}: ACC ${ev.acc} vs PyTorch ${ref[name].acc}`);
      ev.perClassAcc.forEach((a, c) => assert.ok(Math.abs(a - ref[name].perClassAcc[c]) < 1e-6 || (Number.isNaN(ref[name].perClassAcc[c])), `${name}: class ${c} ${a} vs ${ref[name].perClassAcc[c]}`));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
