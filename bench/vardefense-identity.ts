// Fingerprints of VarDefense's purification on the planted fixture, to check that a change meant to
// be numerically neutral (issue 12's per-step cost work) leaves the purified model bit-identical:
// a hash of every state-dict value, the selected channels and threshold values per layer, ACC/ASR.
//   node dist/bench/vardefense-identity.js --out before.json [--seeds 1,2,3]
//   node dist/bench/vardefense-identity.js --compare before.json [--seeds 1,2,3]
// --cost-fixture: instead, the default preset only, on defense-cost's planted fixture (width 16, 10,000
// images, 1 training epoch), where the purification changes ACC/ASR
import { createHash } from 'crypto';
import * as fs from 'fs';
import { defenseMethod, resolveOptions } from '../src/defenses/registry';
import { varDefense, VarDefenseOptions } from '../src/defenses/vardefense';
import { evaluate, plantBackdoor, planted } from '../test/fixtures/planted';

/** the default preset and variants that reach the other code paths (conv+BN penalty, group-l2, live teacher, exact statistics, other metrics) */
const costFixture = process.argv.includes('--cost-fixture');
const variants: [string, Record<string, unknown>][] = costFixture ? [['bn-distill', {}]] : [
  ['bn-distill', {}], ['paper', {}], ['control-lambda0', {}], ['bn-distill', { penalty: 'group-l2' }],
  ['bn-distill', { augment: 'crop' }], ['bn-distill', { statsMomentum: null }], ['bn-distill', { measureAt: 'bn-relu' }],
  ['control-mean', {}], ['bn-distill', { metric: 'entropy' }], ['bn-distill', { thresholdStep: 'iteration', scope: 'network-wise' }],
];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const seeds = (arg('seeds') ?? '1,2,3').split(',').map(Number);
const results: Record<string, unknown> = {};
for (const seed of seeds) {
  for (const [preset, set] of variants) {
    const p = costFixture ? plantBackdoor({ seed, width: 16, train: 10000, epochs: 1 }) : planted(seed);
    const r = varDefense(p.model, p.data, resolveOptions(defenseMethod('vardefense'), preset, set) as unknown as VarDefenseOptions);
    const hash = createHash('sha256');
    for (const [k, v] of p.model.stateDict()) hash.update(k).update(Buffer.from((v.toArray() as Float32Array).buffer));
    const m = evaluate(p);
    const key = `${costFixture ? 'cost fixture ' : ''}seed ${seed} ${preset}${Object.entries(set).map(([k, v]) => ` ${k}=${String(v)}`).join('')}`;
    results[key] = {
      state: hash.digest('hex'), acc: m.acc, asr: m.asr,
      selected: r.perLayer.map((l) => l.selected), thresholdValues: r.perLayer.map((l) => l.thresholdValues), valAccAfter: r.valAccAfter,
    };
    process.stderr.write(`${key}: ACC ${(100 * m.acc).toFixed(2)} ASR ${(100 * (m.asr ?? NaN)).toFixed(2)}\n`);
  }
}
const out = arg('out'), compare = arg('compare');
if (out) fs.writeFileSync(out, JSON.stringify(results, null, 1));
if (compare) {
  const ref = JSON.parse(fs.readFileSync(compare, 'utf8')) as Record<string, Record<string, unknown>>;
  let diffs = 0;
  for (const [key, r] of Object.entries(results) as [string, Record<string, unknown>][]) {
    if (!ref[key]) { process.stdout.write(`${key}: not in ${compare}\n`); diffs++; continue; }
    for (const field of Object.keys(r)) {
      if (JSON.stringify(r[field]) === JSON.stringify(ref[key][field])) continue;
      diffs++;
      // values (threshold values) that moved by rounding: by how much
      const a = [r[field]].flat(2) as unknown[], e = [ref[key][field]].flat(2) as unknown[];
      const rel = a.length === e.length && a.every((v) => typeof v === 'number')
        ? Math.max(...a.map((v, i) => Math.abs((v as number) - (e[i] as number)) / Math.max(1e-30, Math.abs(e[i] as number))).filter((d) => !Number.isNaN(d))) : NaN;
      process.stdout.write(`${key}: ${field} differs${Number.isNaN(rel) ? '' : ` (at most ${rel.toExponential(2)} relative)`}\n`);
    }
  }
  process.stdout.write(diffs ? `${diffs} differences\n` : `identical: ${Object.keys(results).length} runs\n`);
  process.exitCode = diffs ? 1 : 0;
}
