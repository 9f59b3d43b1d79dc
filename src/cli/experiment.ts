// `vardefense experiment <config>`: run a grid from a YAML/JSON config, in-process; rerun to continue.
import * as path from 'path';
import { pct } from './report';
import { loadExperiment } from '../experiments/config';
import { runExperiment } from '../experiments/runner';
import { defenseLabel } from '../defenses/registry';

export interface ExperimentFlags { out?: string; dataDir?: string; json: boolean }

export function runExperimentCommand(configFile: string, f: ExperimentFlags): void {
  const e = loadExperiment(configFile);
  const out = f.out ?? path.join('runs', e.name);
  const results = runExperiment(e, out, {
    dataDir: f.dataDir,
    hooks: {
      log: (l) => process.stderr.write(`${l}\n`),
      onCell: (r, i, n, skipped) => process.stderr.write(`[${i + 1}/${n}] ${r.dataset} ${r.attack} seed ${r.seed} ${defenseLabel(r.method, r.preset)}` +
        `${Object.keys(r.set).length ? ` ${JSON.stringify(r.set)}` : ''}: ACC ${pct(r.accAfter)} ASR ${pct(r.asrAfter)}${skipped ? ' (done earlier)' : ''}\n`),
    },
  });
  if (f.json) console.log(JSON.stringify(results));
  else console.log(`${results.length} cells; results in ${path.join(out, 'results.jsonl')} and results.csv; tables: vardefense report ${path.join(out, 'cells')} [--html report.html]`);
}
