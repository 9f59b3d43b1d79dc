// torchvision's convnext_tiny (small/base/large by structure): state dicts load by name; logits and
// gradients as PyTorch's (layer scales randomised so every block counts; stochastic depth at p = 0).
import { test } from 'node:test';
import { checkZooParity } from './zoo-parity';

test('torchvision convnext: torch.save state dicts load by name, eval logits, train-mode logits and gradients as torchvision', () => {
  checkZooParity([
    { name: 'convnext_tiny', inChannels: 3, size: 32, batch: 2 },
    ...(['convnext_small', 'convnext_base', 'convnext_large'] as const).map((name) => ({ name, inChannels: 1, size: 32, batch: 0 })),
  ]);
});
