// torchvision's vit_b_16 (b_32 and l_16 by structure; l_32 is their combination), built for 32x32 inputs: state dicts load by name;
// logits (PyTorch's eval uses its fused attention kernel, the toolkit matmul and softmax) and gradients as PyTorch's.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { createModel } from '../../src/models';
import { checkZooParity } from './zoo-parity';

test('torchvision vit: torch.save state dicts load by name, eval logits, train-mode logits and gradients as torchvision', () => {
  checkZooParity([
    { name: 'vit_b_16', inChannels: 3, size: 32, batch: 2 },
    { name: 'vit_b_32', inChannels: 1, size: 64, batch: 0 },
    { name: 'vit_l_16', inChannels: 3, size: 32, batch: 0 },
  ]);
});

test('BackdoorBench\'s ViTs (Sequential(Resize((224, 224)), vit_*)): its state dicts load by name and give its eval logits on 32x32 images', () => {
  checkZooParity([
    // b_32: 49 tokens at 224x224, a quarter of b_16's time; b_16 differs from it in the patch only
    { name: 'backdoorbench-vit_b_32', inChannels: 3, size: 32, batch: 2, evalOnly: true },
    { name: 'backdoorbench-vit_b_16', inChannels: 3, size: 32, batch: 0 },
  ]);
});

test('vit: an image size that is not a multiple of the patch is refused by name, as torchvision does', () => {
  assert.throws(() => createModel({ name: 'vit_b_16', inChannels: 1, numClasses: 10, imageSize: 28 }), /vit_b_16 needs an image size divisible by its patch size 16; these are 28x28/);
});
