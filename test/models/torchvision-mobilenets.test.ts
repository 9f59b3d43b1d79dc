// torchvision's mobilenet_v2, mobilenet_v3_small and mobilenet_v3_large: state dicts load by name; logits
// and gradients as PyTorch's.
import { test } from 'node:test';
import { checkZooParity } from './zoo-parity';

test('torchvision mobilenet_v2/v3: torch.save state dicts load by name, eval logits, train-mode logits and gradients as torchvision', () => {
  checkZooParity([
    { name: 'mobilenet_v2', inChannels: 1, size: 64, batch: 2 },
    { name: 'mobilenet_v3_small', inChannels: 3, size: 64, batch: 2 },
    { name: 'mobilenet_v3_large', inChannels: 3, size: 64, batch: 2 },
  ]);
});
