// torchvision's vgg11_bn / vgg16_bn / vgg19_bn: state dicts load by name; logits and gradients as PyTorch's
// (vgg11_bn, vgg19_bn: names, shapes and order only, to keep the test short; their code path is vgg16_bn's
// with another list).
import { test } from 'node:test';
import { checkZooParity } from './zoo-parity';

test('torchvision vgg*_bn: torch.save state dicts load by name, eval logits, train-mode logits and gradients as torchvision', () => {
  checkZooParity([
    { name: 'vgg16_bn', inChannels: 1, size: 32, batch: 2 },
    { name: 'vgg11_bn', inChannels: 3, size: 32, batch: 0 },
    { name: 'vgg13_bn', inChannels: 1, size: 32, batch: 0 },
    { name: 'vgg19_bn', inChannels: 3, size: 32, batch: 0 },
  ]);
});
