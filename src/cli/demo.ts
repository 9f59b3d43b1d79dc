// `vardefense demo`, the README's main job: poison Fashion-MNIST, train ResNet-18, purify it with
// VarDefense and the baselines (the shipped grid experiments/demo.yaml), print the comparison and write
// the HTML report. It is an ordinary experiment, so a rerun continues where a kill stopped it.
import * as path from 'path';
import { loadExperiment } from '../experiments/config';
import { runExperiment } from '../experiments/runner';
import { defenseLabel } from '../defenses/registry';
import { getNumThreads } from '../torch';
import { writeHtmlReport } from '../report/html';
import { pct } from './report';
import { collectRows } from '../report/summary';

export const DEMO_CONFIG = path.resolve(__dirname, '..', '..', '..', 'experiments', 'demo.yaml');

export interface DemoOptions { config: string; out?: string; dataDir?: string }

export async function runDemo(o: DemoOptions): Promise<void> {
  const started = Date.now();
  const e = loadExperiment(o.config);
  const out = o.out ?? path.join('runs', e.name);
  process.stderr.write(`demo: ${e.datasets.join(', ')}, ${e.model.name} width ${e.model.width}, ${e.attacks.map((a) => a.name).join(', ')}; ` +
    `${e.defenses.length} defenses; ${getNumThreads()} threads; results in ${out}\n`);
  const results = runExperiment(e, out, {
    dataDir: o.dataDir,
    hooks: {
      log: (l) => process.stderr.write(`${l}\n`),
      onCell: (r, i, n, skipped) => process.stderr.write(`[${i + 1}/${n}] ${defenseLabel(r.method, r.preset)}: ACC ${pct(r.accAfter)} ASR ${pct(r.asrAfter)}` +
        `${skipped ? ' (done earlier)' : ` (${r.seconds.toFixed(0)} s)`}\n`),
    },
  });
  const first = results[0];
  console.log(`\nbackdoored model: ACC ${pct(first.accBefore)}  ASR ${pct(first.asrBefore)}  (${e.attacks[0].name}, poison ratio ${e.attacks[0].poisonRatio}, target ${e.attacks[0].target})`);
  const labels = results.map((r) => defenseLabel(r.method, r.preset));
  const width = Math.max(22, ...labels.map((l) => l.length + 1));
  console.log(`${'defense'.padEnd(width)}${'ACC after'.padStart(10)}${'ASR after'.padStart(11)}${'clean->target'.padStart(15)}${'time'.padStart(8)}`);
  results.forEach((r, i) =>
    console.log(`${labels[i].padEnd(width)}${pct(r.accAfter).padStart(10)}${pct(r.asrAfter).padStart(11)}${pct(r.floorAfter).padStart(15)}${`${r.seconds.toFixed(0)} s`.padStart(8)}`));
  const html = path.join(out, 'report.html');
  await writeHtmlReport(collectRows([path.join(out, 'cells')]), html, { dataDir: o.dataDir });
  console.log(`\nHTML report: ${html}; all results: ${path.join(out, 'results.csv')}; total ${((Date.now() - started) / 60000).toFixed(1)} min`);
}
