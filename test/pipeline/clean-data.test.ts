// Clean data drawn from a training split: seeded, stratified by class, distinct indices; and the CLI's
// mapping of defend flags to a request, with errors naming the flag.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { defendRequest, DefendFlags } from '../../src/pipeline/flag-requests';
import { stratifiedDraw } from '../../src/pipeline/clean-data';
import { Rng } from '../../src/util/rng';

// unbalanced labels: class c has 100 * (c + 1) members, shuffled
const rng = new Rng(3);
const labels = [...rng.permutation(5500)].map((i) => { let c = 0, edge = 100; while (i >= edge) { c++; edge += 100 * (c + 1); } return c; });

test('stratifiedDraw: each class in proportion, distinct sorted indices, the seed decides which', () => {
  const a = stratifiedDraw(labels, 10, 550, 1);
  assert.equal(a.length, 550);
  assert.equal(new Set(a).size, 550);
  assert.deepEqual([...a], [...a].sort((x, y) => x - y));
  const perClass = Array.from({ length: 10 }, (_, c) => [...a].filter((i) => labels[i] === c).length);
  assert.deepEqual(perClass, Array.from({ length: 10 }, (_, c) => 10 * (c + 1)));
  assert.deepEqual(stratifiedDraw(labels, 10, 550, 1), a, 'same seed, same draw');
  const b = stratifiedDraw(labels, 10, 550, 2);
  assert.ok([...b].filter((i) => !a.includes(i)).length > 200, 'another seed draws other images');
  // shares that do not divide: the sizes still add up, each class within one of its share
  const c = stratifiedDraw(labels, 10, 37, 1);
  assert.equal(new Set(c).size, 37);
  for (let k = 0; k < 10; k++) assert.ok(Math.abs([...c].filter((i) => labels[i] === k).length - (37 * 100 * (k + 1)) / 5500) < 1);
  assert.equal(stratifiedDraw(labels, 10, 5500, 1).length, 5500);
});

const flags: DefendFlags = { method: 'ft', set: [], valFraction: 0.1, force: false, json: false, cleanSeed: 1, width: 64, attack: 'none', triggerSize: 3,
  pattern: 'white', position: 'fixed', offset: '0,0', alpha: 0.2, poisonRatio: 0.05, target: 0, allToAll: false, attackSeed: 1 };
const typed = (...keys: string[]) => (k: string): boolean => keys.includes(k);

test('defend flags: a model without a run, or a run; errors name the flag', () => {
  const r = defendRequest({ ...flags, weights: 'm.pt', model: 'resnet18', width: 16, dataset: 'mnist', cleanSize: 300, cleanSeed: 4, out: 'o', attack: 'patch' }, typed());
  assert.ok('model' in r);
  assert.deepEqual(r.model, { model: 'resnet18', width: 16, dataset: 'mnist', weights: 'm.pt' });
  assert.deepEqual(r.clean, { kind: 'split', dataset: 'mnist', size: 300, seed: 4 });
  assert.equal(r.holdOutSeed, 4);
  assert.equal(r.attack?.target, 0);
  // the verdict: on by default (scan and all), --no-verdict-scan without the scan, --no-verdict off
  assert.equal(r.verdict, undefined);
  const base = { ...flags, weights: 'm.pt', model: 'resnet18' as const, width: 16, dataset: 'mnist' as const, cleanSize: 300, out: 'o' };
  assert.deepEqual(defendRequest({ ...base, verdictScan: false }, typed()).verdict, { scan: false });
  assert.equal(defendRequest({ ...base, verdict: false, verdictScan: false }, typed()).verdict, false);
  const plain = defendRequest({ ...flags, weights: 'm.pt', model: 'small-cnn', dataset: 'mnist', cleanSize: 300, out: 'o' }, typed());
  assert.ok('model' in plain && plain.attack === null && plain.model.width === undefined);
  assert.throws(() => defendRequest({ ...flags, weights: 'm.pt', model: 'small-cnn', out: 'o' }, typed()), /missing --dataset <name>, --clean <path> or --clean-size <n>$/);
  assert.throws(() => defendRequest({ ...flags, weights: 'm.pt', model: 'small-cnn', dataset: 'mnist', cleanSize: 9, out: 'o', attack: 'patch', target: 10 }, typed()), /--target: must be a class of mnist/);
  assert.deepEqual(defendRequest({ ...flags, run: 'r' }, typed()), { methods: 'ft', overrides: {}, valFraction: 0.1, dataDir: undefined, force: false, run: 'r', weights: undefined, out: undefined });
  assert.throws(() => defendRequest({ ...flags, run: 'r', cleanSize: 9 }, typed('cleanSize')), /^Error: --clean-size: the model, its data and attack come from --run r/);
  assert.throws(() => defendRequest({ ...flags, run: 'r' }, typed('triggerSize')), /^Error: --trigger-size: /);
});
