// `vardefense preview`: clean vs triggered samples as a PNG grid.
import { writePreview } from '../attacks/preview';
import { applyTrigger } from '../attacks/triggers';
import { DatasetName, loadImageSet } from '../data/datasets';
import { Rng } from '../util/rng';
import { AttackFlags, checkedAttack } from './options';

export function runPreview(o: AttackFlags & { dataset: DatasetName; dataDir?: string; count: number; out: string }): void {
  const attack = checkedAttack(o, o.dataset);
  if (!attack) throw new Error('--attack none has no trigger to preview');
  const test = loadImageSet(o.dataset, 'test', o.dataDir);
  const clean = test.images.narrow(0, 0, Math.min(o.count, test.images.size(0)));
  writePreview(o.out, clean, applyTrigger(clean, attack.trigger, new Rng(attack.seed)));
  console.log(`wrote ${o.out}`);
}
