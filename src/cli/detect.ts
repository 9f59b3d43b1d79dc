// `vardefense detect`: is the run's model backdoored, and towards which class? Neural Cleanse on the
// run's clean split; a per-class table and detect.json. The model is only read.
import * as path from 'path';
import { datasetInfo, withoutTestSet } from '../data/datasets';
import { disposeSet, holdOut } from '../defenses/common';
import { neuralCleanse, neuralCleanseOptions, NeuralCleanseReport } from '../defenses/neural-cleanse';
import { parseOverrides } from '../defenses/registry';
import { writeFileAtomic } from '../util/atomic';
import { cleanSplit, loadModel, readRun } from './defend';

export interface DetectFlags { run: string; weights?: string; preset: string; set: string[]; seed?: number; out?: string; dataDir?: string; json: boolean }

export function detect(f: DetectFlags): { report: NeuralCleanseReport; file: string } {
  const info = readRun(f.run, f.weights);
  const overrides = parseOverrides(f.set);
  if (f.seed !== undefined) overrides.seed = f.seed;
  const options = neuralCleanseOptions(f.preset, overrides);
  const clean = cleanSplit(info, f.dataDir);
  // Neural Cleanse uses the whole clean split; the split only fits the defenses' data type
  const data = { ...holdOut(clean, 0.1, info.cfg.seed), norm: datasetInfo(info.cfg.dataset) };
  disposeSet(clean);
  const model = loadModel(info);
  const report = withoutTestSet(() => neuralCleanse(model, data, options, { log: (l) => process.stderr.write(`${l}\n`) }));
  model.dispose();
  disposeSet(data.train);
  disposeSet(data.val);
  const file = f.out ?? path.join(f.run, 'detect.json');
  writeFileAtomic(file, JSON.stringify({ source: { run: path.resolve(f.run), weights: path.resolve(info.weights) }, ...report }, null, 1));
  return { report, file };
}

export function detectTable(r: NeuralCleanseReport): string {
  const lines = ['| class | mask L1 | anomaly index | flagged |', '|---|---|---|---|'];
  for (const k of r.classes) lines.push(`| ${k.cls} | ${k.maskL1.toFixed(2)} | ${k.anomalyIndex.toFixed(2)} | ${k.flagged ? 'yes' : ''} |`);
  return lines.join('\n');
}

export function runDetect(f: DetectFlags): void {
  const { report, file } = detect(f);
  if (f.json) console.log(JSON.stringify(report));
  else {
    console.log(detectTable(report));
    console.log(`flagged: ${report.flagged.length ? report.flagged.join(', ') : 'none'} (anomaly index of the smallest mask ${report.anomalyIndex.toFixed(2)}); ${file}`);
  }
}
