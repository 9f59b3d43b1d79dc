// The defender's clean split: a seeded fraction of the training set held out from the attacker; and a
// seeded class-stratified draw of a given size.
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

/**
 * `size` indices into `labels`, sorted: each class gets its share of `size` in proportion to its count
 * (largest remainders get the leftover), its members chosen by a seeded permutation.
 */
export function stratifiedDraw(labels: number[], classes: number, size: number, seed: number): Int32Array {
  const members: number[][] = Array.from({ length: classes }, () => []);
  labels.forEach((y, i) => members[y].push(i));
  const exact = members.map((m) => (m.length * size) / labels.length);
  const counts = exact.map(Math.floor);
  const order = exact.map((e, c) => [e - Math.floor(e), c]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, c]) => c);
  for (let left = size - counts.reduce((a, b) => a + b, 0), i = 0; left > 0; i++) {
    const c = order[i % classes];
    if (counts[c] < members[c].length) { counts[c]++; left--; }
  }
  const rng = new Rng(seed ^ 0xc1ea);
  const out: number[] = [];
  members.forEach((m, c) => {
    const perm = rng.permutation(m.length);
    for (let k = 0; k < counts[c]; k++) out.push(m[perm[k]]);
  });
  return Int32Array.from(out).sort();
}
