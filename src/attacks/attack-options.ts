// The attack as flat options: the command line's flags and an experiment config's attack entries are
// both this one schema (the CLI makes a flag of each key, with its help, default and range; the
// experiment config extends it with a name), made of the trigger kinds' own fields.
// pipeline/attack-spec.ts turns the options into the AttackSpec that poisons and measures; the checks
// that depend on the dataset (the patch inside its images, the target one of its classes) are
// attackIssues' (poison.ts).
import { z } from 'zod';
import { ATTACK_SPEC_SCHEMA } from './poison';
import { SIG_SCHEMA } from './sig';
import { BLEND_SCHEMA, PATCH_SCHEMA } from './triggers';
import { WANET_SCHEMA } from './wanet';

export const ATTACK_KINDS = ['patch', 'blend', 'sig', 'wanet', 'none'] as const;

/** BackdoorBench's defaults (config/attack/sig/default.yaml, config/attack/wanet/default.yaml) */
export const SIG_DEFAULTS = { delta: 40, freq: 6 };
export const WANET_DEFAULTS = { k: 4, s: 0.5, gridRescale: 1, crossRatio: 2 };

// each field is its trigger kind's own (triggers.ts, sig.ts, wanet.ts, poison.ts): its range and the
// wording of its errors come from there, with a flag's default and help added here
const { size, pattern, position } = PATCH_SCHEMA.shape;
const { delta, freq } = SIG_SCHEMA.shape;
const { k, s, gridRescale, crossRatio } = WANET_SCHEMA.shape;
const { poisonRatio, target, seed } = ATTACK_SPEC_SCHEMA.shape;

export const ATTACK_OPTIONS = z.object({
  attack: z.enum(ATTACK_KINDS).default('patch').describe('trigger kind (sig: clean-label sinusoid, Barni et al.; wanet: warping, Nguyen and Tran)'),
  triggerSize: size.default(3).describe('patch side in pixels'),
  pattern: pattern.default('white').describe('patch pattern'),
  position: position.default('fixed').describe('patch position'),
  offset: z.string().regex(/^\d+,\d+$/, "'dx,dy'").default('0,0').describe('fixed patch offset from the bottom-right corner'),
  alpha: BLEND_SCHEMA.shape.alpha.default(0.2).describe('blend ratio of the noise trigger (with --trigger-image: its opacity, default 1)'),
  sigDelta: delta.default(SIG_DEFAULTS.delta).describe('SIG amplitude in pixel levels (0..255)'),
  sigFreq: freq.default(SIG_DEFAULTS.freq).describe('SIG periods across the image width'),
  wanetK: k.default(WANET_DEFAULTS.k).describe('WaNet control grid side'),
  wanetS: s.default(WANET_DEFAULTS.s).describe('WaNet warping strength'),
  wanetGridRescale: gridRescale.default(WANET_DEFAULTS.gridRescale).describe('WaNet grid rescale, in (0, 1]'),
  wanetCrossRatio: crossRatio.default(WANET_DEFAULTS.crossRatio).describe('WaNet noise-mode samples per poisoned sample (true labels kept)'),
  poisonRatio: poisonRatio.default(0.05).describe('fraction of training samples poisoned (sig: of target-class samples)'),
  target: target.default(0).describe('all-to-one target class'),
  allToAll: z.boolean().default(false).describe('relabel y -> y+1 mod C instead of all-to-one'),
  attackSeed: seed.default(1).describe('seed of the trigger pattern or WaNet field, poisoned indices, positions and WaNet noise'),
});

/** The options of one trigger kind: absent is its default (older callers and configs do not give them). */
type KindKeys = 'sigDelta' | 'sigFreq' | 'wanetK' | 'wanetS' | 'wanetGridRescale' | 'wanetCrossRatio';
type Options = z.infer<typeof ATTACK_OPTIONS>;
export type AttackFlags = Omit<Options, KindKeys> & Partial<Pick<Options, KindKeys>>;
