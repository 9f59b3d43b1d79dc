// Is a model backdoored, and towards which class? Neural Cleanse on clean data: a run's clean split, or
// weights given with their architecture and a clean source (a draw from the training split, or the
// defender's images). The model is only read; the result is written to detect.json.
import * as path from 'path';
import { withoutTestSet } from '../data/datasets';
import { disposeSet, holdOut } from '../defenses/common';
import { neuralCleanse, neuralCleanseOptions, NeuralCleanseReport } from '../defenses/neural-cleanse';
import { writeFileAtomic } from '../util/atomic';
import { assertPrecision, Precision, withPrecision } from '../torch';
import { CleanSource, loadCleanData } from './clean-data';
import { cleanRecordOf } from './defend';
import { inputInfo, loadModel, ModelSource } from './model';
import { readRun } from './run-dir';

interface Common {
  preset?: string; overrides?: Record<string, unknown>; dataDir?: string; log?: (line: string) => void;
  /** fp32 (default) or bf16 (bfloat16 autocast; refused where the CPU has no AVX512-BF16 or AMX), recorded in detect.json when bf16 */
  precision?: Precision;
}

/** A run of ours: its model (or other `weights`) and clean split; detect.json defaults to <run>/detect.json. */
export interface RunDetectRequest extends Common { run: string; weights?: string; out?: string }

/** Weights with their architecture and clean data (the caller disposes clean.set for 'images'); `out`: the detect.json written. */
export interface ModelDetectRequest extends Common {
  model: ModelSource; clean: CleanSource; out: string;
  /** seed of the hold-out split (Neural Cleanse uses the whole clean data; the split only fits the defenses' data type), default 1 */
  holdOutSeed?: number;
}

export type DetectRequest = RunDetectRequest | ModelDetectRequest;

interface DetectPlan { model: ModelSource; clean: CleanSource; holdOutSeed: number; file: string; source: Record<string, unknown> }

function planOf(r: DetectRequest): DetectPlan {
  if ('run' in r) {
    const info = readRun(r.run, r.weights);
    return {
      model: { dataset: info.cfg.dataset, model: info.cfg.model, width: info.cfg.width, weights: info.weights },
      clean: { kind: 'run', dataset: info.cfg.dataset, indices: info.cleanIndices }, holdOutSeed: info.cfg.seed,
      file: r.out ?? path.join(r.run, 'detect.json'), source: { run: path.resolve(r.run), weights: path.resolve(info.weights) },
    };
  }
  const clean = cleanRecordOf(r.clean);
  return {
    model: r.model, clean: r.clean, holdOutSeed: r.holdOutSeed ?? 1, file: r.out,
    source: { weights: path.resolve(r.model.weights), target: { model: r.model.model, width: r.model.width, dataset: r.model.dataset, ...(r.model.norm ? { norm: r.model.norm } : {}) }, clean },
  };
}

export function detect(r: DetectRequest): { report: NeuralCleanseReport; file: string } {
  const precision = r.precision ?? 'fp32';
  assertPrecision(precision);
  const plan = planOf(r);
  const options = neuralCleanseOptions(r.preset ?? 'default', r.overrides ?? {});
  const clean = loadCleanData(plan.clean, r.dataDir);
  const data = { ...holdOut(clean, 0.1, plan.holdOutSeed), norm: inputInfo(plan.model) };
  if (plan.clean.kind !== 'images') disposeSet(clean);
  const model = loadModel(plan.model);
  const report = withPrecision(precision, () => withoutTestSet(() => neuralCleanse(model, data, options, { log: r.log ?? ((l) => process.stderr.write(`${l}\n`)) })));
  model.dispose();
  disposeSet(data.train);
  disposeSet(data.val);
  writeFileAtomic(plan.file, JSON.stringify({ source: plan.source, ...(precision === 'fp32' ? {} : { precision }), ...report }, null, 1));
  return { report, file: plan.file };
}

export function detectTable(r: NeuralCleanseReport): string {
  const lines = ['| class | mask L1 | anomaly index | flagged |', '|---|---|---|---|'];
  for (const k of r.classes) lines.push(`| ${k.cls} | ${k.maskL1.toFixed(2)} | ${k.anomalyIndex.toFixed(2)} | ${k.flagged ? 'yes' : ''} |`);
  return lines.join('\n');
}
