// Is a run's model backdoored, and towards which class? Neural Cleanse on the run's clean split; the
// model is only read, the result is written to detect.json.
import * as path from 'path';
import { datasetInfo, withoutTestSet } from '../data/datasets';
import { disposeSet, holdOut } from '../defenses/common';
import { neuralCleanse, neuralCleanseOptions, NeuralCleanseReport } from '../defenses/neural-cleanse';
import { writeFileAtomic } from '../util/atomic';
import { loadCleanData } from './clean-data';
import { loadModel } from './model';
import { readRun } from './run-dir';

export interface DetectRequest {
  run: string; weights?: string; preset?: string; overrides?: Record<string, unknown>;
  /** detect.json's path (default <run>/detect.json) */
  out?: string; dataDir?: string; log?: (line: string) => void;
}

export function detect(r: DetectRequest): { report: NeuralCleanseReport; file: string } {
  const info = readRun(r.run, r.weights);
  const options = neuralCleanseOptions(r.preset ?? 'default', r.overrides ?? {});
  const clean = loadCleanData({ kind: 'run', dataset: info.cfg.dataset, indices: info.cleanIndices }, r.dataDir);
  // Neural Cleanse uses the whole clean split; the split only fits the defenses' data type
  const data = { ...holdOut(clean, 0.1, info.cfg.seed), norm: datasetInfo(info.cfg.dataset) };
  disposeSet(clean);
  const model = loadModel({ dataset: info.cfg.dataset, model: info.cfg.model, width: info.cfg.width, weights: info.weights });
  const report = withoutTestSet(() => neuralCleanse(model, data, options, { log: r.log ?? ((l) => process.stderr.write(`${l}\n`)) }));
  model.dispose();
  disposeSet(data.train);
  disposeSet(data.val);
  const file = r.out ?? path.join(r.run, 'detect.json');
  writeFileAtomic(file, JSON.stringify({ source: { run: path.resolve(r.run), weights: path.resolve(info.weights) }, ...report }, null, 1));
  return { report, file };
}

export function detectTable(r: NeuralCleanseReport): string {
  const lines = ['| class | mask L1 | anomaly index | flagged |', '|---|---|---|---|'];
  for (const k of r.classes) lines.push(`| ${k.cls} | ${k.maskL1.toFixed(2)} | ${k.anomalyIndex.toFixed(2)} | ${k.flagged ? 'yes' : ''} |`);
  return lines.join('\n');
}
