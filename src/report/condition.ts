// A run's condition: what produced its model apart from randomness, so that runs differing only in seeds pool.
import * as crypto from 'crypto';
import type { TrainConfig } from '../train/run';

/**
 * What produced a run's model apart from randomness: the training config without `seed`, the attack's
 * `seed` and the trigger's `seed` (a grid with attackSeed 'seed' draws them from the cell's seed), and
 * without `evalEachEpoch` (reporting only).
 */
export function conditionOf(cfg: TrainConfig): string {
  const { seed: _seed, evalEachEpoch: _eval, attack, ...rest } = cfg;
  const seedFree = attack && { ...attack, seed: undefined, trigger: { ...attack.trigger, seed: undefined } };
  return crypto.createHash('sha256').update(canonical({ ...rest, attack: seedFree })).digest('hex').slice(0, 12);
}

/** JSON with sorted keys and undefined fields left out: equal configs give equal text. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
