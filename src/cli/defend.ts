// `vardefense defend`: flags -> a defend request (a training run of ours, or weights with their
// architecture and clean images drawn from the dataset), then the table or JSON of the outcomes.
import { AttackSpec } from '../attacks/poison';
import { DatasetName } from '../data/datasets';
import { defenseLabel } from '../defenses/registry';
import { ModelName } from '../models';
import { AttackFlags, flagOf } from '../pipeline/attack-spec';
import { CleanDataError } from '../pipeline/clean-data';
import { defend, DefendOutcome, DefendRequest, overridesOf } from '../pipeline/defend';
import { checkedAttack } from './options';
import { pct } from './report';

export interface DefendFlags extends Partial<AttackFlags> {
  run?: string; weights?: string; model?: ModelName; width?: number; dataset?: DatasetName; cleanSize?: number; cleanSeed?: number;
  method: string; set: string[]; lambda?: string; out?: string; valFraction: number; seed?: number; dataDir?: string;
  force: boolean; json: boolean;
}

/** Flags that describe the model, its data and trigger without a run; with --run they come from its config.json. */
const MODEL_FLAGS: (keyof DefendFlags)[] = ['model', 'width', 'dataset', 'cleanSize', 'cleanSeed', 'attack', 'triggerSize', 'pattern', 'position', 'offset',
  'alpha', 'poisonRatio', 'target', 'allToAll', 'attackSeed', 'sigDelta', 'sigFreq', 'wanetK', 'wanetS', 'wanetGridRescale', 'wanetCrossRatio'];

/**
 * The request the flags describe; `given` says whether the user typed a flag (not its default), so that a
 * flag --run would silently ignore is refused.
 */
export function defendRequest(f: DefendFlags, given: (key: keyof DefendFlags) => boolean = (k) => f[k] !== undefined): DefendRequest {
  const common = { methods: f.method, overrides: overridesOf(f.set, { seed: f.seed, lambda: f.lambda }), valFraction: f.valFraction, dataDir: f.dataDir, force: f.force };
  if (f.run) {
    const clash = MODEL_FLAGS.find((k) => given(k));
    if (clash) throw new Error(`${flagOf(clash)}: the model, its data and attack come from --run ${f.run} (its config.json); drop ${flagOf(clash)} or --run`);
    return { ...common, run: f.run, weights: f.weights, out: f.out };
  }
  const missing = ([['weights', '--weights <file.pt|file.safetensors>'], ['model', '--model <arch>'], ['dataset', '--dataset <name>'],
    ['cleanSize', '--clean-size <n>'], ['out', '--out <dir>']] as [keyof DefendFlags, string][]).filter(([k]) => f[k] === undefined).map(([, flag]) => flag);
  if (missing.length) throw new Error(`give --run <dir>, or the model and its clean data: missing ${missing.join(', ')}`);
  const attack: AttackSpec | null = f.attack ? checkedAttack(f as AttackFlags, f.dataset!) : null;
  return {
    ...common, model: { model: f.model!, width: f.model === 'small-cnn' ? undefined : f.width, dataset: f.dataset!, weights: f.weights! },
    clean: { kind: 'split', dataset: f.dataset!, size: f.cleanSize!, seed: f.cleanSeed ?? 1 }, attack, out: f.out!, holdOutSeed: f.cleanSeed ?? 1,
  };
}

export function outcomeTable(rows: DefendOutcome[]): string {
  const ft = rows.find((r) => r.method === 'ft');
  const head = '| defense | ACC before | ACC after | ASR before | ASR after | RA after | clean->target after | seconds | vs FT time |';
  const lines = [head, '|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const ratio = ft ? (r.report.seconds / ft.report.seconds).toFixed(2) : '-';
    lines.push(`| ${defenseLabel(r.method, r.preset)} | ${pct(r.before.acc)} | ${pct(r.after.acc)} | ${pct(r.before.asr)} | ${pct(r.after.asr)} | ${pct(r.after.ra)} | ${pct(r.after.cleanToTarget ?? null)} | ${r.report.seconds.toFixed(1)} | ${ratio} |`);
  }
  return lines.join('\n');
}

const CLEAN_FLAGS = { size: '--clean-size', seed: '--clean-seed', indices: '--run' };

export function runDefend(f: DefendFlags, given?: (key: keyof DefendFlags) => boolean): void {
  const request = defendRequest(f, given);
  let rows: DefendOutcome[];
  try {
    rows = defend(request, (o) => process.stderr.write(`${o.method}:${o.preset}: ACC ${pct(o.before.acc)} -> ${pct(o.after.acc)}, ASR ${pct(o.before.asr)} -> ${pct(o.after.asr)} (${o.report.seconds.toFixed(1)} s)\n`));
  } catch (e) {
    if (e instanceof CleanDataError && e.field !== 'indices') throw new Error(`${CLEAN_FLAGS[e.field]}: ${e.message.replace(/^clean (size|seed) /, '')}`);
    throw e;
  }
  if (f.json) console.log(JSON.stringify(rows.map((r) => ({ method: r.method, preset: r.preset, dir: r.dir, before: r.before, after: r.after, seconds: r.report.seconds }))));
  else console.log(outcomeTable(rows));
}
