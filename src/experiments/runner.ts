// Runs an experiment's cells in-process: one backdoored model per model key (trained once, resumable,
// shared by every defense on it), one defense per cell; finished cells are skipped, each result is
// appended to results.jsonl and results.csv, so a kill loses at most the running cell.
import * as fs from 'fs';
import * as path from 'path';
import { defenseDirName } from '../defenses/registry';
import { assertPrecision } from '../torch';
import { defend, DefendOutcome } from '../pipeline/defend';
import { trainProgressHooks } from '../pipeline/train';
import { runFiles, train } from '../train/run';
import { readRunRecord } from '../train/run-records';
import { Cell, expandCells, Experiment } from './config';
import { writeFileAtomic } from '../util/atomic';
import { csvCell } from '../util/csv';
import { ComputeEnvironment } from '../torch/environment';

export interface CellResult {
  cell: string; dataset: string; attack: string; seed: number; method: string; preset: string; set: Record<string, unknown>;
  modelKey: string; accBefore: number; accAfter: number; asrBefore: number | null; asrAfter: number | null; raAfter: number | null;
  floorAfter: number | null; seconds: number; dir: string;
  /** libtorch threads, CPU and kernels the defense ran with (absent in reports written before they were recorded) */
  threads?: number;
  cpu?: string;
  /** the CPU's widest instruction set, ATen's dispatch level and any kernel limit set in the environment */
  kernels?: string;
}

export interface RunHooks { log?: (line: string) => void; onCell?: (r: CellResult, index: number, total: number, skipped: boolean) => void }

const CSV_KEYS: (keyof CellResult)[] = ['cell', 'dataset', 'attack', 'seed', 'method', 'preset', 'set', 'modelKey', 'accBefore', 'accAfter',
  'asrBefore', 'asrAfter', 'raAfter', 'floorAfter', 'seconds', 'threads', 'cpu', 'kernels', 'dir'];

/** Where a cell's backdoored model lives: <models>/<model key>, <models> defaulting to <out>/models (--models shares one cache between experiments). */
export function modelDir(out: string, cell: Cell, models?: string): string { return path.join(models ?? path.join(out, 'models'), cell.modelKey); }
export function cellDir(out: string, cell: Cell): string { return path.join(out, 'cells', cell.id); }

export function reportOf(out: string, cell: Cell): string {
  return path.join(cellDir(out, cell), defenseDirName(cell.method, cell.preset), 'report.json');
}

export function toResult(cell: Cell, o: DefendOutcome): CellResult {
  return {
    cell: cell.id, dataset: cell.dataset, attack: cell.attack, seed: cell.seed, method: cell.method, preset: cell.preset, set: cell.set,
    modelKey: cell.modelKey, accBefore: o.before.acc, accAfter: o.after.acc, asrBefore: o.before.asr, asrAfter: o.after.asr, raAfter: o.after.ra,
    floorAfter: o.after.cleanToTarget ?? null, seconds: o.report.seconds, dir: o.dir, threads: o.threads,
    cpu: o.environment?.cpu, kernels: o.environment && kernelsOf(o.environment),
  };
}

/** "avx512f, ATen AVX2, ONEDNN_MAX_CPU_ISA=AVX2": what picks the float kernels (and ", bf16 autocast (amx_bf16)" for bf16). */
export const kernelsOf = (e: ComputeEnvironment): string =>
  [e.isa, `ATen ${e.atenCapability}`, ...Object.entries(e.limits).map(([k, v]) => `${k}=${v}`),
    ...(e.precision === 'bf16' ? [`bf16 autocast (${e.bf16Hardware ?? 'unknown'})`] : [])].join(', ');

/** Results already recorded in results.jsonl (a torn last line from a kill is ignored). */
export function readResults(out: string): CellResult[] {
  const file = path.join(out, 'results.jsonl');
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').flatMap((l) => {
    try { return l.trim() ? [JSON.parse(l) as CellResult] : []; } catch { return []; }
  });
}

const csvLine = (r: CellResult): string => `${CSV_KEYS.map((k) => csvCell(r[k])).join(',')}\n`;

/** Rebuilds results.csv from results.jsonl when it is missing or has other columns (an older version's); true if rebuilt. */
export function syncCsv(out: string): boolean {
  const csv = path.join(out, 'results.csv'), header = `${CSV_KEYS.join(',')}\n`;
  if (fs.existsSync(csv) && fs.readFileSync(csv, 'utf8').startsWith(header)) return false;
  writeFileAtomic(csv, header + readResults(out).map(csvLine).join(''));
  return true;
}

export function append(out: string, r: CellResult): void {
  const jsonl = path.join(out, 'results.jsonl'), csv = path.join(out, 'results.csv');
  const text = fs.existsSync(jsonl) ? fs.readFileSync(jsonl, 'utf8') : '';
  if (text && !text.endsWith('\n')) fs.writeFileSync(jsonl, text.slice(0, text.lastIndexOf('\n') + 1)); // drop a torn line
  fs.appendFileSync(jsonl, `${JSON.stringify(r)}\n`);
  if (!syncCsv(out)) fs.appendFileSync(csv, csvLine(r));
}

/** Trains the cell's backdoored model unless it is there already (a partial run resumes). */
export function ensureModel(out: string, cell: Cell, dataDir?: string, log?: (l: string) => void, models?: string): string {
  const dir = modelDir(out, cell, models);
  const files = runFiles(dir);
  if (fs.existsSync(files.model) && fs.existsSync(files.metrics)) return dir;
  log?.(`training the backdoored model ${cell.modelKey} (${cell.dataset}, ${cell.attack}, seed ${cell.seed})`);
  const r = train(cell.train, dir, { resume: fs.existsSync(files.config), dataDir, hooks: log ? trainProgressHooks(cell.train.epochs, log) : {} });
  r.model.dispose();
  return dir;
}

/** Runs one cell (training its model first if needed); returns its result. */
export function runCell(e: Experiment, out: string, cell: Cell, dataDir?: string, log?: (l: string) => void, models?: string): CellResult {
  const run = ensureModel(out, cell, dataDir, log, models);
  // the original model's verdict search is kept by the model, for every cell that shares it
  const [o] = defend({ run, methods: [[cell.method, cell.preset]], overrides: { ...cell.set }, out: cellDir(out, cell), valFraction: e.valFraction, dataDir,
    precision: e.precision, verdict: e.verdict, verdictCache: path.join(run, 'verdict-original.json') });
  return toResult(cell, o);
}

export function runExperiment(e: Experiment, out: string, o: { dataDir?: string; models?: string; hooks?: RunHooks } = {}): CellResult[] {
  assertPrecision(e.precision);
  const cells = expandCells(e);
  fs.mkdirSync(out, { recursive: true });
  writeFileAtomic(path.join(out, 'experiment.json'), JSON.stringify(e, null, 1));
  const recorded = new Set(readResults(out).map((r) => r.cell));
  syncCsv(out);
  const results: CellResult[] = [];
  cells.forEach((cell, i) => {
    const done = fs.existsSync(reportOf(out, cell));
    const r = done ? toResult(cell, readRunRecord<DefendOutcome>(reportOf(out, cell))) : runCell(e, out, cell, o.dataDir, o.hooks?.log, o.models);
    if (!recorded.has(cell.id)) append(out, r);
    results.push(r);
    o.hooks?.onCell?.(r, i, cells.length, done);
  });
  return results;
}
