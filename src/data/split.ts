// The defender's clean split: a seeded fraction of the training set held out from the attacker.
import { scope, tensor } from '../torch';
import { Rng } from '../util/rng';
import { ImageSet } from './image-set';

export interface DefenderSplit { attacker: ImageSet; clean: ImageSet; cleanIndices: Int32Array }

export function defenderSplit(train: ImageSet, fraction = 0.05, seed = 0): DefenderSplit {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`clean fraction must be in (0, 1), got ${fraction}`);
  const n = train.labels.numel;
  const perm = new Rng(seed ^ 0x5eed).permutation(n);
  const k = Math.round(fraction * n);
  const cleanIdx = perm.slice(0, k).sort(), attackerIdx = perm.slice(k).sort();
  const take = (idx: Int32Array): ImageSet => scope(() => {
    const t = tensor(idx, [idx.length]).long();
    return { images: train.images.indexSelect(0, t), labels: train.labels.indexSelect(0, t), classes: train.classes };
  });
  return { attacker: take(attackerIdx), clean: take(cleanIdx), cleanIndices: cleanIdx };
}
