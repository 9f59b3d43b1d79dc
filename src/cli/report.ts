// Human-readable tables for metrics.
import { Metrics } from '../train/metrics';
import { pct } from '../util/format';

export function metricsTable(m: Metrics): string {
  const lines = [`ACC ${pct(m.acc)}   ASR ${pct(m.asr)}   RA ${pct(m.ra)}   clean->target ${pct(m.cleanToTarget)}   (${m.testImages} test images)`, 'per-class accuracy:'];
  lines.push(m.perClassAcc.map((a, c) => `${c}: ${pct(a)}`).join('  '));
  return lines.join('\n');
}

export { pct };
