// `vardefense experiment <config>`: run a grid from a YAML/JSON config, in-process or on BullMQ workers
// (--queue); rerun to continue. `vardefense worker`: run cells from the queue.
import * as path from 'path';
import { pct } from './report';
import { Experiment, loadExperiment } from '../experiments/config';
import { CellResult, runExperiment } from '../experiments/runner';
import { runExperimentQueued, startWorker } from '../experiments/queue';
import { defenseLabel } from '../defenses/registry';
import { gridPace } from '../pipeline/progress';
import type { Precision } from '../torch';

export interface ExperimentFlags { out?: string; dataDir?: string; models?: string; json: boolean; queue?: string; datasets?: string; attacks?: string; defenses?: string; precision?: Precision }

/** --datasets a,b: the part of the grid on those datasets (cell ids unchanged, so the parts add up). */
function onlyDatasets(e: Experiment, list?: string): Experiment {
  if (!list) return e;
  const wanted = list.split(',').map((d) => d.trim());
  const unknown = wanted.filter((d) => !e.datasets.includes(d as Experiment['datasets'][number]));
  if (unknown.length) throw new Error(`--datasets: ${unknown.join(', ')} not in the config's datasets (${e.datasets.join(', ')})`);
  return { ...e, datasets: e.datasets.filter((d) => wanted.includes(d)) };
}

/** --attacks a,b: the part of the grid with those attack names (ids unchanged: processes can split a grid). */
function onlyAttacks(e: Experiment, list?: string): Experiment {
  if (!list) return e;
  const wanted = list.split(',').map((a) => a.trim());
  const names = e.attacks.map((a) => a.name);
  const unknown = wanted.filter((a) => !names.includes(a));
  if (unknown.length) throw new Error(`--attacks: ${unknown.join(', ')} not in the config's attacks (${names.join(', ')})`);
  return { ...e, attacks: e.attacks.filter((a) => wanted.includes(a.name)) };
}

const entryLabel = (d: Experiment['defenses'][number]): string => (typeof d === 'string' ? d.replace(/:default$/, '') : defenseLabel(d.method, d.preset));

/** --defenses a,b:preset: the grid's entries with those labels, options and sweeps included (ids unchanged: a grid can run cheap defenses first). */
export function onlyDefenses(e: Experiment, list?: string): Experiment {
  if (!list) return e;
  const wanted = list.split(',').map((d) => d.trim().replace(/:default$/, ''));
  const labels = [...new Set(e.defenses.map(entryLabel))];
  const unknown = wanted.filter((d) => !labels.includes(d));
  if (unknown.length) throw new Error(`--defenses: ${unknown.join(', ')} not in the config's defenses (${labels.join(', ')})`);
  return { ...e, defenses: e.defenses.filter((d) => wanted.includes(entryLabel(d))) };
}

const cellLine = (r: CellResult, done: number, n: number, suffix: string): string =>
  `[${done}/${n}] ${r.dataset} ${r.attack} seed ${r.seed} ${defenseLabel(r.method, r.preset)}${Object.keys(r.set).length ? ` ${JSON.stringify(r.set)}` : ''}: ` +
  `ACC ${pct(r.accAfter)} ASR ${pct(r.asrAfter)}${suffix}\n`;

export async function runExperimentCommand(configFile: string, f: ExperimentFlags): Promise<void> {
  const config = onlyDefenses(onlyAttacks(onlyDatasets(loadExperiment(configFile), f.datasets), f.attacks), f.defenses);
  const e = f.precision ? { ...config, precision: f.precision } : config;
  const out = f.out ?? path.join('runs', e.name);
  const pace = gridPace();
  const results = f.queue ? await runExperimentQueued(e, out, f.queue, {
    log: (l) => process.stderr.write(`${l}\n`),
    onCell: (r, done, n, worker) => process.stderr.write(cellLine(r, done, n, ` (${worker})`)),
  }) : runExperiment(e, out, {
    dataDir: f.dataDir, models: f.models,
    hooks: {
      log: (l) => process.stderr.write(`${l}\n`),
      onCell: (r, i, n, skipped) => process.stderr.write(cellLine(r, i + 1, n, skipped ? ' (done earlier)' : pace(i, n))),
    },
  });
  if (f.json) console.log(JSON.stringify(results));
  else console.log(`${results.length} cells; results in ${path.join(out, 'results.jsonl')} and results.csv; tables: vardefense report ${path.join(out, 'cells')} [--html report.html]`);
}

export interface WorkerFlags { queue: string; out: string; dataDir?: string; concurrency: number; lockDuration: number }

/** Runs cells until SIGINT/SIGTERM, then lets the running ones finish their lock and closes. */
export async function runWorkerCommand(f: WorkerFlags): Promise<void> {
  const worker = await startWorker({ url: f.queue, out: f.out, dataDir: f.dataDir, concurrency: f.concurrency, lockDuration: f.lockDuration,
    log: (l) => process.stderr.write(`${l}\n`) });
  process.stderr.write(`worker on ${f.queue}: models and cells under ${f.out}/<experiment>/ (Ctrl-C to stop)\n`);
  const stop = (): void => { void worker.close().then(() => process.exit(0)); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
