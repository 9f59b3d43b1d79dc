// Every defense behind one interface: a name, option schemas with presets, and a run function that
// sees only the defender's data. Options are validated by zod; errors name the option.
import { z } from 'zod';
import { nn } from '../torch/compute';
import { DefenseData, DefenseHooks } from './common';
import { fineTuneDefense, FT_DEFAULTS } from './finetune';
import { METRIC_NAMES } from './metrics';
import { BN_DISTILL_PRESET, PAPER_PRESET, varDefense } from './vardefense';
import { clp, CLP_DEFAULTS } from './clp';
import { finePruning, FINE_PRUNING_DEFAULTS } from './fine-pruning';
import { nad, NAD_DEFAULTS, NAD_PUBLISHED } from './nad';
import { anp, ANP_DEFAULTS } from './anp';
import { ganDefense, GAN_CPU_SHORT, GAN_DEFAULTS, GAN_FIXED_3X3, GAN_PUBLISHED } from './gan';
import { fst, FST_DEFAULTS } from './fst';
import { ftSam, FT_SAM_DEFAULTS } from './ft-sam';
import { sau, SAU_DEFAULTS } from './sau';

export interface DefenseReport { method: string; options: object; valAccBefore: number; valAccAfter: number; seconds: number }

export interface DefenseMethod {
  name: string;
  summary: string;
  schema: z.ZodObject<z.ZodRawShape>;
  /** named option sets; 'default' is used when none is given */
  presets: Record<string, Record<string, unknown>>;
  run(model: nn.Module, data: DefenseData, options: never, hooks: DefenseHooks): DefenseReport;
}

const fineTuneShape = {
  epochs: z.number().int().min(1), lr: z.number().positive(), batchSize: z.number().int().min(1), momentum: z.number().min(0).max(1),
  weightDecay: z.number().min(0), schedule: z.enum(['cosine', 'constant']), seed: z.number().int().min(0),
};

// The published-strength fine-tuning options: optional, so that existing presets resolve (and are
// reported) exactly as before. Only for defenses whose per-image targets stay right under augmentation.
const publishedFineTuneShape = {
  schedule: z.enum(['cosine', 'constant', 'step']), milestones: z.array(z.number().int().min(1)).optional(), nesterov: z.boolean().optional(),
  augment: z.enum(['none', 'crop', 'crop-flip']).optional(),
};

const varDefenseSchema = z.object({
  ...fineTuneShape,
  layers: z.number().int().min(1), metric: z.enum(METRIC_NAMES as [string, ...string[]]), scope: z.enum(['layer-wise', 'network-wise']),
  startFraction: z.number().min(0).max(1), maxFraction: z.number().min(0).max(1), thresholdStep: z.enum(['epoch', 'iteration']),
  statsMomentum: z.number().min(0).lt(1).nullable(), measureAt: z.enum(['conv', 'bn', 'bn-relu']),
  // optional, no default: absent = 'training', so the resolved options (and the reuse digest) of existing presets are unchanged
  statsSource: z.enum(['training', 'original-eval']).optional(), lambda: z.union([z.number().min(0), z.literal('auto')], { errorMap: () => ({ message: "expected a number >= 0 or 'auto'" }) }),
  penalty: z.enum(['l1', 'group-l2']), penalize: z.enum(['conv+bn', 'bn']), zeroBelow: z.number().min(0),
  lambdaCandidates: z.array(z.number().min(0)).min(1), lambdaTolerance: z.number().min(0).max(1), lambdaTrialEpochs: z.number().int().min(1),
  distill: z.number().min(0), distillTemperature: z.number().positive(),
  // optional as for the other fine-tuning defenses (absent = 'none'); the distillation teacher runs live on augmented batches
  augment: publishedFineTuneShape.augment,
  // optional, no default: absent = the head kept, so existing presets resolve as before
  featureShift: z.number().min(0).optional(),
  adversarial: z.number().min(0).optional(), adversarialEps: z.number().gt(0).max(1).optional(), adversarialSteps: z.number().int().min(1).optional(), adversarialFraction: z.number().min(0).max(1).optional(),
  unlearn: z.enum(['none', 'suspect', 'all']).optional(), stampFraction: z.number().min(0).max(1).optional(), searchSteps: z.number().int().min(1).optional(),
}).strict();

const finePruningSchema = z.object({
  ...fineTuneShape, ...publishedFineTuneShape, layer: z.enum(['features', 'last-conv']), stepFraction: z.number().gt(0).max(1), tolerance: z.number().min(0).max(1),
}).strict();

const nadSchema = z.object({
  ...fineTuneShape, ...publishedFineTuneShape, teacherEpochs: z.number().int().min(1), layers: z.array(z.string().min(1)).min(1), betas: z.array(z.number().min(0)).min(1), p: z.number().positive(),
}).strict();

const clpSchema = z.object({ u: z.number().min(0) }).strict();

const anpSchema = z.object({
  iterations: z.number().int().min(1), epochs: z.number().int().min(1).nullable(), batchSize: z.number().int().min(1), eps: z.number().min(0),
  steps: z.number().int().min(1), alpha: z.number().min(0).max(1), lr: z.number().positive(), momentum: z.number().min(0).max(1),
  threshold: z.union([z.number().min(0).max(1), z.literal('auto')], { errorMap: () => ({ message: "expected a number in [0, 1] or 'auto'" }) }), thresholds: z.array(z.number().min(0).max(1)).min(1),
  tolerance: z.number().min(0).max(1), seed: z.number().int().min(0),
}).strict();

// patchSize/beta (one size, one beta: older presets, resolved as before) or triggerSizes/betas (the
// search and MESA's ensemble); exactly one of each pair, checked when the defense starts
const ganSchema = z.object({
  ...fineTuneShape, patchSize: z.number().int().min(1).optional(),
  triggerSizes: z.array(z.union([z.number().int().min(1), z.literal('blend')], { errorMap: () => ({ message: "expected a patch side >= 1 or 'blend'" }) })).min(1).optional(),
  blendAlpha: z.number().gt(0).max(1).optional(), zDim: z.number().int().min(1), hidden: z.number().int().min(1),
  generatorEpochs: z.number().int().min(1), generatorLr: z.number().positive(), beta: z.number().gt(0).max(1).optional(),
  betas: z.array(z.number().gt(0).max(1)).min(1).optional(), diversity: z.number().min(0),
  stampFraction: z.number().min(0).max(1), placement: z.enum(['random', 'adaptive']),
}).strict();

const fstSchema = z.object({ ...fineTuneShape, ...publishedFineTuneShape, alpha: z.number().min(0), head: z.string().min(1).nullable() }).strict();

const ftSamSchema = z.object({ ...fineTuneShape, ...publishedFineTuneShape, rho: z.number().min(0), adaptive: z.boolean(), labelSmoothing: z.number().min(0).lt(1) }).strict();

const sauSchema = z.object({
  epochs: z.number().int().min(1), batchSize: z.number().int().min(1), lr: z.number().positive(), eps: z.number().min(0),
  pgdSteps: z.number().int().min(1), pgdStepSize: z.number().min(0), beta1: z.number().min(0), beta2: z.number().min(0),
  lambdaClean: z.number().min(0), lambdaAdv: z.number().min(0), lambdaShared: z.number().min(0), trainMode: z.boolean(), seed: z.number().int().min(0),
}).strict();

export const VARDEFENSE_PRESETS: Record<string, Record<string, unknown>> = {
  paper: { ...PAPER_PRESET },
  'bn-distill': { ...BN_DISTILL_PRESET },
  'bn-distill-eval': { ...BN_DISTILL_PRESET, statsSource: 'original-eval' },
};
// The default from docs/protocol.md section 8b's second round of judges until issue 27 (below):
// bn-distill measured on the original model in eval mode. bn-distill keeps its frozen meaning, so the
// final grid's labels and cell ids stay what they were when it ran.
VARDEFENSE_PRESETS.default = VARDEFENSE_PRESETS['bn-distill-eval'];
// Controls around bn-distill for the ablations (docs/protocol.md): everything as bn-distill (layers,
// fractions, penalty, lambda, distillation, lr, epochs), only the selection differs. control-lambda0 is
// "FT+distill": bn-distill's fine-tune and distillation without the penalty.
Object.assign(VARDEFENSE_PRESETS, {
  'control-random': { ...BN_DISTILL_PRESET, metric: 'random', statsMomentum: null },
  'control-gamma': { ...BN_DISTILL_PRESET, metric: 'weight', measureAt: 'bn', statsMomentum: null },
  'control-mean': { ...BN_DISTILL_PRESET, metric: 'mean' },
  'control-lambda0': { ...BN_DISTILL_PRESET, lambda: 0 },
});

// Issue 27 (docs/protocol.md section 10): bn-distill-eval that also searches a trigger for every class
// on the original model (trigger-search.ts) and unlearns them, 15% of each batch stamped with them in
// turn, labels and distillation targets of the clean images kept. Frozen with its ablations, each
// one part removed at the same budget: the search and unlearning (= bn-distill-eval), the VarDefense
// penalty (lambda 0), the distillation, and the variance selection (random channels instead).
const ROBUST = { ...BN_DISTILL_PRESET, statsSource: 'original-eval', unlearn: 'all', stampFraction: 0.15 };
Object.assign(VARDEFENSE_PRESETS, {
  robust: ROBUST,
  'robust-lambda0': { ...ROBUST, lambda: 0 },
  'robust-no-distill': { ...ROBUST, distill: 0 },
  'robust-random': { ...ROBUST, metric: 'random', statsMomentum: null, statsSource: undefined },
});
// The default since issue 27 (docs/protocol.md section 10), by the rule written there before any final
// judge was trained (experiments/issue27-dev/rule.js on the development records). bn-distill-eval
// keeps its meaning (and the final grid's tables their labels).
VARDEFENSE_PRESETS.default = VARDEFENSE_PRESETS.robust;

export const DEFENSES: Record<string, DefenseMethod> = {
  vardefense: {
    name: 'vardefense', summary: 'VarDefense: penalise low-variance neurons of the last layers while fine-tuning',
    schema: varDefenseSchema, presets: VARDEFENSE_PRESETS, run: varDefense as DefenseMethod['run'],
  },
  ft: {
    name: 'ft', summary: 'fine-tuning on the clean split',
    // 'published': BackdoorBench's FT trains on randomly cropped batches (padding 4; it also flips CIFAR-10: augment=crop-flip)
    schema: z.object({ ...fineTuneShape, ...publishedFineTuneShape }).strict(),
    presets: { default: { ...FT_DEFAULTS }, published: { ...FT_DEFAULTS, augment: 'crop' } }, run: fineTuneDefense as DefenseMethod['run'],
  },
  'fine-pruning': {
    name: 'fine-pruning', summary: 'Fine-Pruning: prune the channels least active on clean data while accuracy holds, then fine-tune',
    // 'published': fine-tuning on randomly cropped batches, as BackdoorBench's fp.py (CIFAR-10: augment=crop-flip)
    schema: finePruningSchema, presets: { default: { ...FINE_PRUNING_DEFAULTS }, published: { ...FINE_PRUNING_DEFAULTS, augment: 'crop' } }, run: finePruning as DefenseMethod['run'],
  },
  nad: {
    name: 'nad', summary: 'NAD: distil the attention maps of a clean-fine-tuned teacher into the model',
    schema: nadSchema, presets: { default: { ...NAD_DEFAULTS }, published: { ...NAD_PUBLISHED } }, run: nad as DefenseMethod['run'],
  },
  clp: {
    name: 'clp', summary: 'CLP (data-free): zero the channels with outlying conv+BN Lipschitz bounds',
    schema: clpSchema, presets: { default: { ...CLP_DEFAULTS } }, run: clp as DefenseMethod['run'],
  },
  anp: {
    name: 'anp', summary: 'ANP: learn BN-neuron masks under adversarial neuron perturbation, prune the low ones',
    schema: anpSchema, presets: { default: { ...ANP_DEFAULTS }, 'threshold-0.2': { ...ANP_DEFAULTS, threshold: 0.2 } }, run: anp as DefenseMethod['run'],
  },
  gan: {
    name: 'gan', summary: 'GAN-based (MESA-style): generate triggers per class, fine-tune on clean images stamped with the target\'s',
    // default: the trigger-size search [3, 5, 7, blend] and the beta ensemble; 'published': the simple
    // public form (one 3x3 generator, one beta); 'fixed-3x3': the default before the search (resolves as
    // it did, for the existing results); 'cpu-short': NOT published, 5 of the 10 generator epochs
    schema: ganSchema, presets: { default: { ...GAN_DEFAULTS }, published: { ...GAN_PUBLISHED }, 'fixed-3x3': { ...GAN_FIXED_3X3 }, 'cpu-short': { ...GAN_CPU_SHORT } }, run: ganDefense as DefenseMethod['run'],
  },
  fst: {
    name: 'fst', summary: 'FST: re-initialise the head, fine-tune with a penalty on its overlap with the backdoored head, head norm kept',
    schema: fstSchema, presets: { default: { ...FST_DEFAULTS } }, run: fst as DefenseMethod['run'],
  },
  'ft-sam': {
    name: 'ft-sam', summary: 'FT-SAM: fine-tuning with (adaptive) sharpness-aware minimisation and label smoothing',
    // 'cpu-short': NOT the published setting, 10 of its 100 epochs for CPU runs
    schema: ftSamSchema, presets: { default: { ...FT_SAM_DEFAULTS }, 'cpu-short': { ...FT_SAM_DEFAULTS, epochs: 10 } }, run: ftSam as DefenseMethod['run'],
  },
  sau: {
    name: 'sau', summary: 'SAU: unlearn shared adversarial examples of the backdoored and the purified model, with clean cross-entropy',
    // 'cpu-short': NOT the published setting, 10 of its 100 rounds for CPU runs
    schema: sauSchema, presets: { default: { ...SAU_DEFAULTS }, 'cpu-short': { ...SAU_DEFAULTS, epochs: 10 } }, run: sau as DefenseMethod['run'],
  },
};

// a defense that cannot run on a model says which defense it is (the pipeline adds the model)
for (const d of Object.values(DEFENSES)) {
  const run = d.run;
  d.run = (model, data, options, hooks) => {
    try {
      return run(model, data, options, hooks);
    } catch (e) {
      if (!(e instanceof Error) || e.message.startsWith(`${d.name}: `)) throw e;
      e.message = `${d.name}: ${e.message}`;
      throw e;
    }
  };
}

export const DEFENSE_NAMES = Object.keys(DEFENSES);

/** 'method' or 'method:preset', as on the command line and in tables. */
export const defenseLabel = (method: string, preset: string): string => (preset === 'default' ? method : `${method}:${preset}`);
/** The folder a defense writes to: 'method' or 'method-preset'. */
export const defenseDirName = (method: string, preset: string): string => defenseLabel(method, preset).replace(':', '-');

export function defenseMethod(name: string): DefenseMethod {
  const m = Object.hasOwn(DEFENSES, name) ? DEFENSES[name] : undefined;
  if (!m) throw new Error(`unknown defense '${name}' (known: ${DEFENSE_NAMES.join(', ')})`);
  return m;
}

function describeIssue(i: z.ZodIssue, method: string): string {
  const key = i.path.join('.') || '(options)';
  if (i.code === 'unrecognized_keys') return `${method}: unknown option(s) ${i.keys.map((k) => `'${k}'`).join(', ')}`;
  if (i.code === 'invalid_enum_value') return `${method}: option '${key}' must be one of ${i.options.map((o) => `'${String(o)}'`).join(', ')}, got '${String(i.received)}'`;
  return `${method}: option '${key}': ${i.message}`;
}

/** The preset's options with overrides applied, validated. */
export function resolveOptions(method: DefenseMethod, preset = 'default', overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base = Object.hasOwn(method.presets, preset) ? method.presets[preset] : undefined;
  if (!base) throw new Error(`${method.name}: unknown preset '${preset}' (known: ${Object.keys(method.presets).join(', ')})`);
  const r = method.schema.safeParse({ ...base, ...overrides });
  if (!r.success) throw new Error(r.error.issues.map((i) => describeIssue(i, method.name)).join('; '));
  return r.data;
}

/** 'key=value' pairs from the command line; values are JSON when they parse as JSON, else strings. */
export function parseOverrides(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of pairs) {
    const m = /^([A-Za-z][\w]*)=(.*)$/.exec(p);
    if (!m) throw new Error(`--set expects key=value, got '${p}'`);
    let v: unknown = m[2];
    try { v = JSON.parse(m[2]); } catch { /* a plain string */ }
    out[m[1]] = v;
  }
  return out;
}
