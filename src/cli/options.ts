// Command-line options shared by train, eval and defend, with checked parsing.
import { Command, InvalidArgumentError, Option } from 'commander';
import { AttackSpec, attackIssues } from '../attacks/poison';
import { TriggerSpec } from '../attacks/triggers';
import { DATASET_NAMES } from '../data/datasets';
import { MODEL_NAMES } from '../models';
import { formatIssues } from '../util/validation';

export function int(name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
}

export function num(name: string, min = -Infinity, max = Infinity) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}], got '${v}'`);
    return n;
  };
}

/** A share strictly between 0 and 1. */
export function fraction(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!(n > 0 && n < 1)) throw new InvalidArgumentError(`${name} must be a number in (0, 1), got '${v}'`);
    return n;
  };
}

export function addDataOptions(c: Command): Command {
  return c
    .addOption(new Option('--dataset <name>', 'dataset').choices([...DATASET_NAMES]).default('fashion-mnist'))
    .option('--data-dir <dir>', 'dataset root (default: $VARDEFENSE_DATA, ./data, system copies)');
}

export function addModelOptions(c: Command): Command {
  return c
    .addOption(new Option('--model <name>', 'architecture').choices([...MODEL_NAMES]).default('resnet18'))
    .option('--width <n>', 'ResNet base width (64 = the paper\'s ResNet-18)', int('--width', 1), 64);
}

export function addAttackOptions(c: Command): Command {
  return c
    .addOption(new Option('--attack <kind>', 'trigger kind (sig: clean-label sinusoid, Barni et al.; wanet: warping, Nguyen and Tran)').choices([...ATTACK_KINDS]).default('patch'))
    .option('--trigger-size <k>', 'patch side in pixels', int('--trigger-size', 1), 3)
    .addOption(new Option('--pattern <p>', 'patch pattern').choices(['white', 'checkerboard', 'random']).default('white'))
    .addOption(new Option('--position <p>', 'patch position').choices(['fixed', 'random']).default('fixed'))
    .option('--offset <dx,dy>', 'fixed patch offset from the bottom-right corner', '0,0')
    .option('--alpha <a>', 'blend ratio of the noise trigger', num('--alpha', 0, 1), 0.2)
    .option('--sig-delta <d>', 'SIG amplitude in pixel levels (0..255)', positive('--sig-delta', 255), SIG_DEFAULTS.delta)
    .option('--sig-freq <f>', 'SIG periods across the image width', positive('--sig-freq'), SIG_DEFAULTS.freq)
    .option('--wanet-k <k>', 'WaNet control grid side', int('--wanet-k', 2), WANET_DEFAULTS.k)
    .option('--wanet-s <s>', 'WaNet warping strength', positive('--wanet-s'), WANET_DEFAULTS.s)
    .option('--wanet-grid-rescale <r>', 'WaNet grid rescale, in (0, 1]', positive('--wanet-grid-rescale', 1), WANET_DEFAULTS.gridRescale)
    .option('--wanet-cross-ratio <r>', 'WaNet noise-mode samples per poisoned sample (true labels kept)', num('--wanet-cross-ratio', 0), WANET_DEFAULTS.crossRatio)
    .option('--poison-ratio <r>', 'fraction of training samples poisoned (sig: of target-class samples)', fraction('--poison-ratio'), 0.05)
    .option('--target <c>', 'all-to-one target class', int('--target'), 0)
    .option('--all-to-all', 'relabel y -> y+1 mod C instead of all-to-one', false)
    .option('--attack-seed <n>', 'seed of the trigger pattern or WaNet field, poisoned indices, positions and WaNet noise', int('--attack-seed'), 1);
}

export const ATTACK_KINDS = ['patch', 'blend', 'sig', 'wanet', 'none'] as const;

/** BackdoorBench's defaults (config/attack/sig/default.yaml, config/attack/wanet/default.yaml) */
export const SIG_DEFAULTS = { delta: 40, freq: 6 };
export const WANET_DEFAULTS = { k: 4, s: 0.5, gridRescale: 1, crossRatio: 2 };

function positive(name: string, max = Infinity) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || n > max) throw new InvalidArgumentError(`${name} must be ${max === Infinity ? 'a positive number' : `a number in (0, ${max}]`}, got '${v}'`);
    return n;
  };
}

export interface AttackFlags {
  attack: (typeof ATTACK_KINDS)[number]; triggerSize: number; pattern: 'white' | 'checkerboard' | 'random'; position: 'fixed' | 'random';
  offset: string; alpha: number; poisonRatio: number; target: number; allToAll: boolean; attackSeed: number;
  sigDelta?: number; sigFreq?: number; wanetK?: number; wanetS?: number; wanetGridRescale?: number; wanetCrossRatio?: number;
}

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

export function attackFromFlags(f: AttackFlags): AttackSpec | null {
  if (f.attack === 'none') return null;
  const m = /^(\d+),(\d+)$/.exec(f.offset);
  if (!m) throw new InvalidArgumentError(`--offset must be 'dx,dy' with non-negative integers, got '${f.offset}'`);
  if (f.attack === 'sig' && f.allToAll) throw new InvalidArgumentError('--attack sig is clean-label (target-class images only) and cannot be combined with --all-to-all');
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

/** attackFromFlags, checked against the dataset (the patch inside its images, the target one of its classes). */
export function checkedAttack(f: AttackFlags, dataset: string): AttackSpec | null {
  const a = attackFromFlags(f);
  const issues = a ? attackIssues(a, dataset) : [];
  if (issues.length) throw new InvalidArgumentError(formatIssues(issues, (p) => flagOf(`attack.${p}`)));
  return a;
}
