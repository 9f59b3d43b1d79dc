// An AttackSpec from flat settings (the command line's flags, an experiment config's keys), and the
// names that tie the two together.
import { AttackSpec, attackIssues } from '../attacks/poison';
import { TriggerSpec } from '../attacks/triggers';
import { formatIssues } from '../util/validation';
import { AttackFlags, SIG_DEFAULTS, WANET_DEFAULTS } from '../attacks/attack-options';

export { ATTACK_KINDS, ATTACK_OPTIONS, SIG_DEFAULTS, WANET_DEFAULTS } from '../attacks/attack-options';
export type { AttackFlags } from '../attacks/attack-options';

function triggerFromFlags(f: AttackFlags, offset: [number, number]): TriggerSpec {
  switch (f.attack) {
    case 'blend': return { kind: 'blend', alpha: f.alpha, seed: f.attackSeed };
    case 'sig': return { kind: 'sig', delta: f.sigDelta ?? SIG_DEFAULTS.delta, freq: f.sigFreq ?? SIG_DEFAULTS.freq };
    case 'wanet':
      return {
        kind: 'wanet', k: f.wanetK ?? WANET_DEFAULTS.k, s: f.wanetS ?? WANET_DEFAULTS.s, gridRescale: f.wanetGridRescale ?? WANET_DEFAULTS.gridRescale,
        crossRatio: f.wanetCrossRatio ?? WANET_DEFAULTS.crossRatio, seed: f.attackSeed,
      };
    default: return { kind: 'patch', size: f.triggerSize, pattern: f.pattern, position: f.position, offset, seed: f.attackSeed };
  }
}

/** The attack the flags describe, or null for 'none'; errors name the flag. */
export function attackFromFlags(f: AttackFlags): AttackSpec | null {
  if (f.attack === 'none') return null;
  const m = /^(\d+),(\d+)$/.exec(f.offset);
  if (!m) throw new Error(`--offset must be 'dx,dy' with non-negative integers, got '${f.offset}'`);
  if (f.attack === 'sig' && f.allToAll) throw new Error('--attack sig is clean-label (target-class images only) and cannot be combined with --all-to-all');
  const trigger = triggerFromFlags(f, [Number(m[1]), Number(m[2])]);
  return { trigger, poisonRatio: f.poisonRatio, target: f.target, mode: f.allToAll ? 'all-to-all' : 'all-to-one', seed: f.attackSeed };
}

const ATTACK_KEYS: Record<string, keyof AttackFlags> = { 'trigger.size': 'triggerSize', 'trigger.offset': 'offset', 'trigger.alpha': 'alpha' };

/** The AttackFlags key (also the experiment config's key) of an AttackSpec field: 'trigger.size' -> 'triggerSize'. */
export const attackKey = (specPath: string): string => ATTACK_KEYS[specPath] ?? specPath;

/** The flag of a TrainConfig field: 'attack.trigger.size' -> '--trigger-size', 'cleanFraction' -> '--clean-fraction'. */
export function flagOf(configPath: string): string {
  const key = configPath.startsWith('attack.') ? attackKey(configPath.slice('attack.'.length)) : configPath;
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** What is wrong with the flags' attack on `dataset` (the patch inside its images, the target one of its classes), by flag; '' when nothing. */
export function attackFlagIssues(a: AttackSpec | null, dataset: string): string {
  const issues = a ? attackIssues(a, dataset) : [];
  return issues.length ? formatIssues(issues, (p) => flagOf(`attack.${p}`)) : '';
}
