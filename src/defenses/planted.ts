// A tiny planted-backdoor setting for tests and examples: synthetic MNIST-format images, a 3x3 white
// patch at 5% all-to-one, and a narrow ResNet-18 trained for a few seconds.
import { manualSeed, nn, optim, Tensor, tensor } from '../torch';
import { AttackSpec, poisonTrainingSet, triggeredTestSet } from '../attacks/poison';
import { ImageSet } from '../data/datasets';
import { defenderSplit } from '../data/split';
import { syntheticImages } from '../data/synthetic';
import { createModel } from '../models';
import { trainEpoch } from '../train/loop';

export const PLANTED_NORM = { mean: [0.2], std: [0.3] };

export interface Planted {
  model: nn.Module;
  attack: AttackSpec;
  /** the defender's clean split (5% of the training set, never poisoned) */
  clean: ImageSet;
  /** the test set (for reporting only; defenses never see it) */
  test: ImageSet;
  triggered: { images: Tensor; targetLabels: Tensor; trueLabels: Tensor };
}

function imageSet(n: number, seed: number, size: number): ImageSet {
  const { images, labels } = syntheticImages(n, 1, size, 10, seed);
  const l = tensor(labels, [n]);
  const long = l.long();
  l.dispose();
  return { images: tensor(images, [n, 1, size, size]), labels: long, classes: 10 };
}

/** Trains the backdoored model; deterministic for a seed. */
export function plantBackdoor(o: { seed?: number; train?: number; epochs?: number; width?: number; size?: number } = {}): Planted {
  const seed = o.seed ?? 1, size = o.size ?? 16;
  const train = imageSet(o.train ?? 3000, seed, size);
  const test = imageSet(600, seed + 1, size);
  const split = defenderSplit(train, 0.05, seed);
  const attack: AttackSpec = { trigger: { kind: 'patch', size: 3, pattern: 'white', position: 'fixed' }, poisonRatio: 0.05, target: 0, mode: 'all-to-one', seed };
  const p = poisonTrainingSet(split.attacker.images, split.attacker.labels, attack, 10);
  manualSeed(seed);
  const model = createModel({ name: 'resnet18', width: o.width ?? 8, inChannels: 1, numClasses: 10, imageSize: size });
  const opt = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  for (let e = 0; e < (o.epochs ?? 3); e++) trainEpoch(model, opt, p.images, p.labels, { batchSize: 64, norm: PLANTED_NORM });
  opt.dispose();
  return { model, attack, clean: split.clean, test, triggered: triggeredTestSet(test.images, test.labels, attack, 10) };
}
