// `node dist/bench/defense-cost.js --run <dir> [--rounds 3] [--methods vardefense,ft]`: wall time of
// each defense against 10 epochs of plain fine-tuning on the same model and clean split, alternating
// the methods in every round; medians and the ratio to FT.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { defend } from '../src/pipeline/defend';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const run = arg('run', '');
if (!run) throw new Error('--run <dir>: a finished training run of a backdoored model');
const rounds = Number(arg('rounds', '3'));
const methods = arg('methods', 'vardefense,ft').split(',');
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'defense-cost-'));
const times = new Map<string, number[]>(methods.map((m) => [m, []]));
for (let r = 0; r < rounds; r++) {
  for (const m of r % 2 ? [...methods].reverse() : methods) {
    const [o] = defend({ run, methods: m, out, valFraction: 0.1, force: true });
    times.get(m)!.push(o.report.seconds);
    process.stderr.write(`round ${r + 1} ${m}: ${o.report.seconds.toFixed(1)} s\n`);
  }
}
fs.rmSync(out, { recursive: true });
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ft = median(times.get('ft') ?? [NaN]);
const rows = methods.map((m) => ({ method: m, median_s: median(times.get(m)!), all_s: times.get(m)!, ratio_to_ft: median(times.get(m)!) / ft }));
console.log(process.argv.includes('--json') ? JSON.stringify(rows) : rows.map((r) => `${r.method}: median ${r.median_s.toFixed(1)} s (${r.all_s.map((s) => s.toFixed(1)).join(', ')}), ${r.ratio_to_ft.toFixed(2)}x FT`).join('\n'));
