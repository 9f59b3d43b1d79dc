// torchvision's resnet34 / resnet50 / wide_resnet50_2 (and the deeper ones by structure): state dicts load
// by name; logits and gradients as PyTorch's. The toolkit's layout is channels-last, PyTorch's contiguous.
import { test } from 'node:test';
import { checkZooParity } from './zoo-parity';

test('torchvision resnet34/50, wide_resnet50_2: torch.save state dicts load by name, eval logits, train-mode logits and gradients as torchvision', () => {
  checkZooParity([
    { name: 'resnet50', inChannels: 3, size: 64, batch: 2, float64: true },
    { name: 'resnet34', inChannels: 1, size: 64, batch: 2, float64: true },
    { name: 'wide_resnet50_2', inChannels: 3, size: 32, batch: 0 },
    { name: 'resnet101', inChannels: 3, size: 64, batch: 0 },
    { name: 'resnet152', inChannels: 3, size: 64, batch: 0 },
    { name: 'wide_resnet101_2', inChannels: 3, size: 64, batch: 0 },
  ]);
});
