// A first look at issue 12's measurement options and the controls on the planted test fixture (tiny,
// synthetic: 150 training images, width-8 ResNet-18): ACC/ASR after each, one run per fixture seed.
// Indicative only; the protocol's development grid (docs/protocol.md) is where choices are made.
// node dist/bench/controls-planted.js [fixture seeds, default 1,2,3]
import { defenseMethod, resolveOptions } from '../src/defenses/registry';
import { varDefense, VarDefenseOptions } from '../src/defenses/vardefense';
import { evaluate, planted } from '../test/fixtures/planted';

const variants: [string, Record<string, unknown>][] = [
  ['bn-distill', {}], ['bn-distill', { statsSource: 'original-eval' }], ['bn-distill', { measureAt: 'bn-relu' }],
  ['bn-distill', { measureAt: 'bn-relu', statsSource: 'original-eval' }],
  ['control-random', {}], ['control-gamma', {}], ['control-mean', {}], ['control-lambda0', {}],
];
const seeds = (process.argv[2] ?? '1,2,3').split(',').map(Number);
for (const [preset, set] of variants) {
  const cells = seeds.map((seed) => {
    const p = planted(seed);
    varDefense(p.model, p.data, resolveOptions(defenseMethod('vardefense'), preset, set) as unknown as VarDefenseOptions);
    const m = evaluate(p);
    return `${(100 * m.acc).toFixed(1)}/${(100 * (m.asr ?? NaN)).toFixed(1)}`;
  });
  const label = `vardefense:${preset}${Object.entries(set).map(([k, v]) => ` ${k}=${String(v)}`).join('')}`;
  process.stdout.write(`${label.padEnd(62)} ACC/ASR % per fixture seed ${seeds.join(',')}: ${cells.join('  ')}\n`);
}
