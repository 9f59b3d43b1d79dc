// `vardefense defend`: purify a backdoored model from a training run with one or more defenses, each
// on a fresh copy, using only the run's clean split; ACC/ASR/RA before and after for reporting.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { nn, Tensor, tensor } from '../torch';
import { computeEnvironment, ComputeEnvironment } from '../torch/environment';
import { progress, Progress } from './progress';
import { loadTargetModel } from './eval';
import { pct } from './report';
import { AttackSpec } from '../attacks/poison';
import { datasetInfo, ImageSet, loadImageSet, withoutTestSet } from '../data/datasets';
import { DefenseData, DefenseHooks, disposeSet, holdOut } from '../defenses/common';
import { defenseDirName, defenseLabel, defenseMethod, DefenseReport, parseOverrides, resolveOptions } from '../defenses/registry';
import { evaluateModel, Metrics } from '../train/metrics';
import { readRunAttack, readTrainConfig, runFiles, saveModel, TrainConfig } from '../train/run';
import { readRunRecord } from '../train/run-records';
import { writeFileAtomic } from '../util/atomic';
import { readFileNamed } from '../util/files';
import { assertFile } from '../util/paths';

export interface DefendFlags {
  run: string; weights?: string; method: string; set: string[]; lambda?: string; out?: string; valFraction: number; seed?: number; dataDir?: string;
  force: boolean; json: boolean;
}

export interface DefendOutcome {
  method: string; preset: string; dir: string;
  /** what was purified: the training run, its weights and config */
  source: { run: string; weights: string; config: TrainConfig };
  before: Metrics; after: Metrics; report: DefenseReport;
  /** libtorch's intra-op threads: the numbers are reproducible with the same count and kernels */
  threads?: number;
  /** the threads and CPU kernels the numbers were computed with */
  environment?: ComputeEnvironment;
  /** sha256 of everything that determines the result: weights, clean and test data, config, options */
  inputDigest?: string;
}

export interface RunInfo { cfg: TrainConfig; cleanIndices: number[]; weights: string }

export function readRun(dir: string, weights?: string): RunInfo {
  const files = runFiles(dir);
  if (!fs.existsSync(files.config)) throw new Error(`--run ${dir}: no config.json there (is it a training run directory?)`);
  const cfg = readTrainConfig(files.config);
  const attack = readRunAttack(files.attack);
  if (weights) assertFile(weights, '--weights');
  const w = weights ?? files.model;
  if (!fs.existsSync(w)) throw new Error(`${w}: no trained model (finish the training run first, or give --weights)`);
  return { cfg, cleanIndices: attack.cleanIndices, weights: w };
}

/** 'vardefense:paper,ft' -> [['vardefense', 'paper'], ['ft', 'default']] */
export function parseMethods(spec: string): [string, string][] {
  return spec.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const [m, p] = s.split(':');
    defenseMethod(m);
    return [m, p ?? 'default'];
  });
}

export function loadModel(info: RunInfo): nn.Module {
  return loadTargetModel({ dataset: info.cfg.dataset, model: info.cfg.model, width: info.cfg.width, weights: info.weights });
}

export function cleanSplit(info: RunInfo, dataDir?: string): ImageSet {
  const train = loadImageSet(info.cfg.dataset, 'train', dataDir);
  const n = train.labels.numel;
  const bad = info.cleanIndices.find((i) => !Number.isInteger(i) || i < 0 || i >= n);
  if (bad !== undefined) throw new Error(`attack.json: clean index ${bad} is outside the training set (0..${n - 1})`);
  const idx = tensor(Float64Array.from(info.cleanIndices), [info.cleanIndices.length]).long();
  const clean = { images: train.images.indexSelect(0, idx), labels: train.labels.indexSelect(0, idx), classes: train.classes };
  for (const t of [idx, train.images, train.labels]) t.dispose();
  return clean;
}

/** Progress bars per stage, driven by the defenses' progress hook. */
function stageProgress(): DefenseHooks & { stop(): void } {
  let bar: Progress | null = null, current = '';
  return {
    log: (l) => { bar?.stop(); bar = null; current = ''; process.stderr.write(`${l}\n`); },
    progress: (stage, images, total) => {
      if (stage !== current) { bar?.stop(); bar = progress(stage, total); current = stage; }
      bar!.tick(images);
    },
    stop: () => { bar?.stop(); bar = null; current = ''; },
  };
}

export function defend(f: DefendFlags, onResult?: (o: DefendOutcome) => void): DefendOutcome[] {
  const info = readRun(f.run, f.weights);
  const methods = parseMethods(f.method);
  const overrides = parseOverrides(f.set);
  if (f.seed !== undefined) overrides.seed = f.seed;
  if (f.lambda !== undefined) {
    if (f.lambda !== 'auto' && !(Number(f.lambda) >= 0)) throw new Error(`--lambda must be a number >= 0 or 'auto', got '${f.lambda}'`);
    overrides.lambda = f.lambda === 'auto' ? 'auto' : Number(f.lambda);
  }
  const options = methods.map(([m, p]) => resolveOptions(defenseMethod(m), p, overrides));
  const outRoot = f.out ?? path.join(f.run, 'defenses');
  const d = datasetInfo(info.cfg.dataset);
  const attack: AttackSpec | null = info.cfg.attack;

  const dirs = methods.map(([m, preset]) => path.join(outRoot, defenseDirName(m, preset)));

  // the data is loaded even when every method is done: reuse is keyed on a digest of the inputs
  const clean = cleanSplit(info, f.dataDir);
  const data: DefenseData = { ...holdOut(clean, f.valFraction, info.cfg.seed), norm: d };
  const test = loadImageSet(info.cfg.dataset, 'test', f.dataDir);
  const shared = { weights: fileDigest(info.weights), clean: setDigest(clean), test: setDigest(test), config: info.cfg, valFraction: f.valFraction };
  disposeSet(clean);
  const digests = methods.map(([m, preset], i) => digestOf({ ...shared, method: m, preset, options: options[i] }));
  let before: Metrics | null = null;

  const outcomes = methods.map(([m, preset], i): DefendOutcome => {
    const done = f.force ? null : earlierOutcome(dirs[i], digests[i], defenseLabel(m, preset));
    if (done) {
      onResult?.(done);
      return done;
    }
    before ??= undefendedMetrics(info, f, test, attack);
    const model = loadModel(info);
    const hooks = stageProgress();
    process.stderr.write(`${defenseLabel(m, preset)} on ${info.weights}\n`);
    const report = withoutTestSet(() => defenseMethod(m).run(model, data, options[i] as never, hooks));
    hooks.stop();
    const after = evaluateModel(model, test, d, attack);
    fs.mkdirSync(dirs[i], { recursive: true });
    saveModel(path.join(dirs[i], 'model.safetensors'), model, { method: m, preset, source: path.resolve(info.weights), config: JSON.stringify(info.cfg) });
    const environment = computeEnvironment();
    const outcome: DefendOutcome = { method: m, preset, dir: dirs[i], source: { run: path.resolve(f.run), weights: path.resolve(info.weights), config: info.cfg }, before, after, report,
      threads: environment.threads, environment, inputDigest: digests[i] };
    writeFileAtomic(path.join(dirs[i], 'report.json'), JSON.stringify(outcome, null, 1));
    model.dispose();
    onResult?.(outcome);
    return outcome;
  });
  for (const s of [data.train, data.val, test]) disposeSet(s);
  return outcomes;
}

/** A finished report in `dir` computed from the same inputs, or null (with a line saying why it is not reused). */
function earlierOutcome(dir: string, digest: string, label: string): DefendOutcome | null {
  const file = path.join(dir, 'report.json');
  if (!fs.existsSync(file)) return null;
  let done: DefendOutcome;
  try {
    done = readRunRecord<DefendOutcome>(file);
  } catch (e) {
    process.stderr.write(`${label}: ${file} is unreadable (${(e as Error).message}); running it again\n`);
    return null;
  }
  if (done.inputDigest !== digest) {
    process.stderr.write(`${label}: ${file} was computed from other weights, data or options; running it again\n`);
    return null;
  }
  process.stderr.write(`${label}: done earlier (${dir}); --force reruns it\n`);
  return done;
}

const digestOf = (v: unknown): string => crypto.createHash('sha256').update(JSON.stringify(v)).digest('hex');

function fileDigest(file: string): string {
  return crypto.createHash('sha256').update(readFileNamed(file)).digest('hex');
}

function setDigest(s: ImageSet): string {
  const h = crypto.createHash('sha256');
  for (const t of [s.images, s.labels] as Tensor[]) {
    const a = t.toArray() as ArrayBufferView;
    h.update(t.shape.join('x')).update(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  }
  return h.digest('hex');
}

/**
 * The undefended model's test metrics: the training run's own metrics.json when the run's model is the
 * one being purified (the same evaluation, made at the end of training), else a fresh evaluation.
 */
function undefendedMetrics(info: RunInfo, f: DefendFlags, test: ImageSet, attack: AttackSpec | null): Metrics {
  const files = runFiles(f.run);
  if (!f.weights && fs.existsSync(files.metrics)) {
    const m = readRunRecord<Metrics>(files.metrics);
    if (m.cleanToTarget !== undefined) return m;
  }
  const original = loadModel(info);
  const m = evaluateModel(original, test, datasetInfo(info.cfg.dataset), attack);
  original.dispose();
  return m;
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

export function runDefend(f: DefendFlags): void {
  const rows = defend(f, (o) => process.stderr.write(`${o.method}:${o.preset}: ACC ${pct(o.before.acc)} -> ${pct(o.after.acc)}, ASR ${pct(o.before.asr)} -> ${pct(o.after.asr)} (${o.report.seconds.toFixed(1)} s)\n`));
  if (f.json) console.log(JSON.stringify(rows.map((r) => ({ method: r.method, preset: r.preset, dir: r.dir, before: r.before, after: r.after, seconds: r.report.seconds }))));
  else console.log(outcomeTable(rows));
}
