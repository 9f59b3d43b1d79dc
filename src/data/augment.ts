// Standard CIFAR augmentation on uint8 batches: random crop with zero padding, horizontal flip.
// Randomness comes from libtorch's seeded generator.
import { F, noGrad, rand, randint, scope, stack, Tensor } from '../torch';

export function randomCropFlip(images: Tensor, padding = 4): Tensor {
  return noGrad(() => scope(() => {
    const [n, , h, w] = images.shape;
    const padded = F.pad(images, [padding, padding, padding, padding], 0);
    const offsets = randint(0, 2 * padding + 1, [n, 2]).toList();
    const flips = rand([n]).lt(0.5).toList();
    const crops: Tensor[] = [];
    for (let i = 0; i < n; i++) {
      let c = padded.select(0, i).narrow(1, offsets[2 * i], h).narrow(2, offsets[2 * i + 1], w);
      if (flips[i]) c = c.flip([2]);
      crops.push(c);
    }
    return stack(crops);
  }));
}
