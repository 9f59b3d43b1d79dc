// The attack as flat options: the command line's flags and an experiment config's attack entries are
// both this one schema (the CLI makes a flag of each key, with its help, default and range; the
// experiment config extends it with a name). pipeline/attack-spec.ts turns the options into the
// AttackSpec that poisons and measures; the checks that depend on the dataset (the patch inside its
// images, the target one of its classes) are attackIssues' (poison.ts).
import { z } from 'zod';

export const ATTACK_KINDS = ['patch', 'blend', 'sig', 'wanet', 'none'] as const;

/** BackdoorBench's defaults (config/attack/sig/default.yaml, config/attack/wanet/default.yaml) */
export const SIG_DEFAULTS = { delta: 40, freq: 6 };
export const WANET_DEFAULTS = { k: 4, s: 0.5, gridRescale: 1, crossRatio: 2 };

/** A number in a range whose errors say the range and the value: 'must be in (0, 1), got 1'. */
const inRange = (range: string): z.ZodNumber => z.number({
  errorMap: (issue, ctx) => ((issue.code === 'too_small' || issue.code === 'too_big') ? { message: `must be in ${range}, got ${String(ctx.data)}` } : { message: ctx.defaultError }),
});

export const ATTACK_OPTIONS = z.object({
  attack: z.enum(ATTACK_KINDS).default('patch').describe('trigger kind (sig: clean-label sinusoid, Barni et al.; wanet: warping, Nguyen and Tran)'),
  triggerSize: z.number().int().min(1).default(3).describe('patch side in pixels'),
  pattern: z.enum(['white', 'checkerboard', 'random']).default('white').describe('patch pattern'),
  position: z.enum(['fixed', 'random']).default('fixed').describe('patch position'),
  offset: z.string().regex(/^\d+,\d+$/, "'dx,dy'").default('0,0').describe('fixed patch offset from the bottom-right corner'),
  alpha: inRange('[0, 1]').min(0).max(1).default(0.2).describe('blend ratio of the noise trigger (with --trigger-image: its opacity, default 1)'),
  sigDelta: z.number().gt(0).max(255).default(SIG_DEFAULTS.delta).describe('SIG amplitude in pixel levels (0..255)'),
  sigFreq: z.number().gt(0).default(SIG_DEFAULTS.freq).describe('SIG periods across the image width'),
  wanetK: z.number().int().min(2).default(WANET_DEFAULTS.k).describe('WaNet control grid side'),
  wanetS: z.number().gt(0).default(WANET_DEFAULTS.s).describe('WaNet warping strength'),
  wanetGridRescale: z.number().gt(0).max(1).default(WANET_DEFAULTS.gridRescale).describe('WaNet grid rescale, in (0, 1]'),
  wanetCrossRatio: z.number().min(0).default(WANET_DEFAULTS.crossRatio).describe('WaNet noise-mode samples per poisoned sample (true labels kept)'),
  poisonRatio: inRange('(0, 1)').gt(0).lt(1).default(0.05).describe('fraction of training samples poisoned (sig: of target-class samples)'),
  target: z.number().int().min(0).default(0).describe('all-to-one target class'),
  allToAll: z.boolean().default(false).describe('relabel y -> y+1 mod C instead of all-to-one'),
  attackSeed: z.number().int().min(0).default(1).describe('seed of the trigger pattern or WaNet field, poisoned indices, positions and WaNet noise'),
});

/** The options of one trigger kind: absent is its default (older callers and configs do not give them). */
type KindKeys = 'sigDelta' | 'sigFreq' | 'wanetK' | 'wanetS' | 'wanetGridRescale' | 'wanetCrossRatio';
type Options = z.infer<typeof ATTACK_OPTIONS>;
export type AttackFlags = Omit<Options, KindKeys> & Partial<Pick<Options, KindKeys>>;
