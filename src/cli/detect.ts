// `vardefense detect`: Neural Cleanse on a run's model and clean split, or on weights with their clean
// data (src/pipeline/flag-requests.ts, src/pipeline/detect.ts).
import { detect, detectTable } from '../pipeline/detect';
import { DetectFlags, detectRequest, Given } from '../pipeline/flag-requests';

export type { DetectFlags } from '../pipeline/flag-requests';

export function runDetect(f: DetectFlags, given?: Given): void {
  const { report, file } = detect(detectRequest(f, given));
  if (f.json) console.log(JSON.stringify(report));
  else {
    console.log(detectTable(report));
    console.log(`flagged: ${report.flagged.length ? report.flagged.join(', ') : 'none'} (anomaly index of the smallest mask ${report.anomalyIndex.toFixed(2)}); ${file}`);
  }
}
