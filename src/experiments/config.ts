// An experiment: a grid over datasets x attacks x seeds x defenses (x option sweeps), read from YAML or
// JSON and validated by zod; errors name the key and the allowed values.
import * as crypto from 'crypto';
import * as path from 'path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ATTACK_OPTIONS, attackFromFlags, attackKey } from '../pipeline/attack-spec';
import { attackIssues } from '../attacks/poison';
import { DATASET_NAMES } from '../data/datasets';
import { defenseLabel, defenseMethod, resolveOptions } from '../defenses/registry';
import { MODEL_NAMES } from '../models';
import { PRECISIONS } from '../torch/precision';
import { DEFAULT_TRAIN, TrainConfig } from '../train/run';
import { readFileNamed } from '../util/files';
import { parseWith } from '../util/validation';

// names become folder names (runs/<name>, a worker's <out>/<name>): one plain path segment, never '.' or '..'
const safeName = z.string().regex(/^[\w-][\w.-]*$/, "must be a plain folder name (letters, digits, _ . -, not starting with '.')");

const attackSchema = ATTACK_OPTIONS.extend({
  name: safeName,
  // 'seed': the cell's seed, so that a grid over seeds draws a fresh attack (trigger, poisoned indices,
  // positions) for each seed as it draws a fresh training run and clean split (docs/protocol.md)
  attackSeed: z.union([z.number().int().min(0), z.literal('seed')], { errorMap: () => ({ message: "expected an integer >= 0 or 'seed'" }) }).default(1),
}).strict().refine((a) => !(a.attack === 'sig' && a.allToAll), { message: 'attack sig is clean-label and cannot be combined with allToAll', path: ['allToAll'] });

const defenseSchema = z.union([
  z.string().regex(/^[\w-]+(:[\w-]+)?$/, "'method' or 'method:preset'"),
  z.object({
    method: z.string().regex(/^[\w-]+$/, 'must be a defense name (letters, digits, _ -)'), preset: z.string().regex(/^[\w-]+$/, 'must be a preset name (letters, digits, _ -)').default('default'),
    set: z.record(z.unknown()).default({}),
    /** one cell per value of each swept option (the product over options) */
    sweep: z.record(z.array(z.unknown()).min(1)).default({}),
  }).strict(),
]);

export const experimentSchema = z.object({
  name: safeName,
  datasets: z.array(z.enum(DATASET_NAMES)).min(1),
  model: z.object({ name: z.enum(MODEL_NAMES as unknown as [string, ...string[]]).default('resnet18'), width: z.number().int().min(1).default(16) }).strict().default({}),
  train: z.object({
    epochs: z.number().int().min(1).default(DEFAULT_TRAIN.epochs), batchSize: z.number().int().min(1).default(DEFAULT_TRAIN.batchSize),
    lr: z.number().positive().default(DEFAULT_TRAIN.lr), cleanFraction: z.number().gt(0).lt(1).default(DEFAULT_TRAIN.cleanFraction),
  }).strict().default({}),
  attacks: z.array(attackSchema).min(1),
  defenses: z.array(defenseSchema).min(1),
  seeds: z.array(z.number().int().min(0)).min(1).default([1]),
  valFraction: z.number().gt(0).lt(1).default(0.1),
  /** the arithmetic of training and defending (bf16: bfloat16 autocast, refused where the CPU has no AVX512-BF16 or AMX); bf16 cells and models are other cells and models than fp32's */
  precision: z.enum(PRECISIONS).default('fp32'),
  /** the residual-backdoor verdict after each cell's defense: on (default), off, or with other search steps or without the square scan */
  verdict: z.union([z.boolean(), z.object({ steps: z.number().int().min(1).optional(), scan: z.boolean().optional() }).strict()]).default(true),
}).strict().superRefine((e, ctx) => {
  // each attack against each dataset's image size and classes, so a bad grid fails here and not mid-training
  e.attacks.forEach((a, i) => {
    // an entry that fails the attack options' own checks (a range, a malformed offset) or sig with
    // allToAll has its issues above already
    const own = ATTACK_OPTIONS.safeParse({ ...a, attackSeed: 1 }).success;
    const spec = own && !(a.attack === 'sig' && a.allToAll) ? attackFromFlags(flagsFor(a, e.seeds[0])) : null;
    const seen = new Set<string>();
    for (const d of spec ? e.datasets : []) for (const issue of attackIssues(spec!, d)) {
      const key = `${issue.path}: ${issue.message}`; // ratios are wrong on every dataset alike: said once
      if (!seen.has(key)) ctx.addIssue({ code: 'custom', path: ['attacks', i, attackKey(issue.path)], message: issue.message });
      seen.add(key);
    }
  });
});

export type Experiment = z.infer<typeof experimentSchema>;

/** An attack entry's flags for a cell of seed `seed` (attackSeed 'seed' resolved). */
function flagsFor<A extends { attackSeed: number | 'seed' }>(a: A, seed: number): A & { attackSeed: number } {
  return { ...a, attackSeed: a.attackSeed === 'seed' ? seed : a.attackSeed };
}

export interface Cell {
  id: string;
  dataset: string; attack: string; seed: number;
  method: string; preset: string; set: Record<string, unknown>;
  train: TrainConfig;
  /** hash of what produced the backdoored model: cells that share it share one training run */
  modelKey: string;
}

const hash = (v: unknown): string => crypto.createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);

export function parseExperiment(text: string, source: string): Experiment {
  let raw: unknown;
  try {
    raw = /\.json$/i.test(source) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new Error(`${source}: not valid ${/\.json$/i.test(source) ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  return parseWith(experimentSchema, raw, source);
}

export function loadExperiment(file: string): Experiment {
  return parseExperiment(readFileNamed(file).toString('utf8'), path.basename(file));
}

function product(sweep: Record<string, unknown[]>): Record<string, unknown>[] {
  return Object.entries(sweep).reduce<Record<string, unknown>[]>((acc, [k, vs]) => acc.flatMap((a) => vs.map((v) => ({ ...a, [k]: v }))), [{}]);
}

/** Every cell of the grid, in a stable order; defense options are validated here, before any work. */
export function expandCells(e: Experiment): Cell[] {
  const cells: Cell[] = [];
  for (const dataset of e.datasets) for (const a of e.attacks) for (const seed of e.seeds) {
    const train: TrainConfig = {
      ...DEFAULT_TRAIN, ...e.train, dataset: dataset as TrainConfig['dataset'], model: e.model.name as TrainConfig['model'],
      width: e.model.name === 'small-cnn' ? undefined : e.model.width, attack: attackFromFlags(flagsFor(a, seed)), seed, evalEachEpoch: false,
      // fp32 adds no key, so that the models (and cells) of configs written before precision keep their keys
      ...(e.precision === 'fp32' ? {} : { precision: e.precision }),
    };
    const modelKey = hash(train);
    for (const d of e.defenses) {
      const spec = typeof d === 'string' ? { method: d.split(':')[0], preset: d.split(':')[1] ?? 'default', set: {}, sweep: {} } : d;
      for (const point of product(spec.sweep)) {
        const set = { ...spec.set, ...point };
        const where = `defense '${defenseLabel(spec.method, spec.preset)}'`;
        let options: Record<string, unknown>;
        try {
          options = resolveOptions(defenseMethod(spec.method), spec.preset, set);
        } catch (err) {
          throw new Error(`${where}: ${(err as Error).message}`);
        }
        // the resolved options are in the id: a cell is never taken as done after its preset changed
        const id = hash({ modelKey, method: spec.method, preset: spec.preset, set, options, valFraction: e.valFraction });
        cells.push({ id, dataset, attack: a.name, seed, method: spec.method, preset: spec.preset, set, train, modelKey });
      }
    }
  }
  return cells;
}
