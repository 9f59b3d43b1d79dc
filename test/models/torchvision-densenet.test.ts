// torchvision's densenet121 (and 161/169/201 by structure): state dicts load by name; logits and gradients
// as PyTorch's.
import { test } from 'node:test';
import { checkZooParity } from './zoo-parity';

test('torchvision densenet121: torch.save state dicts load by name, eval logits, train-mode logits and gradients as torchvision', () => {
  checkZooParity([
    { name: 'densenet121', inChannels: 1, size: 64, batch: 2 },
    { name: 'densenet161', inChannels: 3, size: 64, batch: 0 },
    { name: 'densenet169', inChannels: 3, size: 64, batch: 0 },
    { name: 'densenet201', inChannels: 3, size: 64, batch: 0 },
  ]);
});
