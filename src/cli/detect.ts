// `vardefense detect`: Neural Cleanse on a run's model and clean split (src/pipeline/detect.ts).
import { parseOverrides } from '../defenses/registry';
import { detect, detectTable } from '../pipeline/detect';

export interface DetectFlags { run: string; weights?: string; preset: string; set: string[]; seed?: number; out?: string; dataDir?: string; json: boolean }

export function runDetect(f: DetectFlags): void {
  const overrides = parseOverrides(f.set);
  if (f.seed !== undefined) overrides.seed = f.seed;
  const { report, file } = detect({ run: f.run, weights: f.weights, preset: f.preset, overrides, out: f.out, dataDir: f.dataDir });
  if (f.json) console.log(JSON.stringify(report));
  else {
    console.log(detectTable(report));
    console.log(`flagged: ${report.flagged.length ? report.flagged.join(', ') : 'none'} (anomaly index of the smallest mask ${report.anomalyIndex.toFixed(2)}); ${file}`);
  }
}
