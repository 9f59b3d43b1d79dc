// VarDefense options do what they say or are refused: lambda auto's order and fallback, the entropy
// metric's momentum, the weight metric's measureAt, cross-field checks.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { manualSeed, noGrad, randn, tensor } from '../../src/torch';
import { ResNet18 } from '../../src/models/resnet';
import { EntropyMetric } from '../../src/defenses/metrics';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { lastUnits } from '../../src/defenses/selection';
import { varDefense, VarDefenseOptions } from '../../src/defenses/vardefense';
import { planted, PLANTED_NORM } from '../fixtures/planted';

const options = (preset: string, o: Record<string, unknown> = {}): VarDefenseOptions =>
  resolveOptions(defenseMethod('vardefense'), preset, o) as unknown as VarDefenseOptions;

test('lambda auto tries the candidates in increasing order and reports how it chose', () => {
  const p = planted();
  const data = p.data;
  const quick = { lambda: 'auto', lambdaTolerance: 0.15, lambdaTrialEpochs: 1, epochs: 1, batchSize: 32, layers: 10, penalize: 'bn' };
  // listed out of order: 1e6 wrecks the accuracy, 1e-3 does not
  const r = varDefense(p.model, data, options('paper', { ...quick, lambdaCandidates: [1e6, 1e-3] }));
  assert.deepEqual(r.lambdaTrials.map((t) => t.lambda), [0, 1e-3, 1e6]);
  assert.ok(r.lambdaTrials[2].valAcc < r.lambdaTrials[0].valAcc - 0.15, `lambda 1e6 costs accuracy (${r.lambdaTrials[2].valAcc} vs ${r.lambdaTrials[0].valAcc})`);
  process.stderr.write(`lambda trials: ${JSON.stringify(r.lambdaTrials)}\n`);
  assert.equal(r.lambda, 1e-3);
  assert.equal(r.lambdaRule, 'largest within tolerance');

  // no candidate within the tolerance: the smallest one, not the first listed, and said so
  const q = planted();
  const logs: string[] = [];
  const f = varDefense(q.model, q.data, options('paper', { ...quick, lambdaCandidates: [1e7, 1e6] }), { log: (l) => logs.push(l) });
  assert.deepEqual(f.lambdaTrials.map((t) => t.lambda), [0, 1e6], 'stops at the first candidate outside the tolerance');
  process.stderr.write(`lambda trials (fallback): ${JSON.stringify(f.lambdaTrials)}\n`);
  assert.equal(f.lambda, 1e6);
  assert.equal(f.lambdaRule, 'none within tolerance: the smallest candidate');
  assert.ok(logs.some((l) => /no candidate kept the validation accuracy/.test(l)));
  const given = varDefense(planted().model, q.data, options('paper', { epochs: 1, batchSize: 64 }));
  assert.equal(given.lambdaRule, 'given');
});

test('the entropy metric honours statsMomentum: a running histogram instead of pooled counts', () => {
  // one channel; batch 1 spans [0, 1], batch 2 sits in one bin: pooled counts weigh by size, momentum by batch
  const b1 = tensor(Float32Array.from({ length: 64 }, (_, i) => i / 63), [64, 1, 1, 1]);
  const b2 = tensor(new Float32Array(192).fill(0.5), [192, 1, 1, 1]);
  const entropy = (p: number[]): number => -p.filter((v) => v > 0).reduce((s, v) => s + v * Math.log(v), 0);
  const histogram = (x: number[]): number[] => {
    const h = new Array(32).fill(0);
    for (const v of x) h[Math.min(31, Math.max(0, Math.floor((v - -1) / (3 / 32))))]++;
    return h;
  };
  const h1 = histogram(b1.toList()), h2 = histogram(b2.toList());
  const pooled = new EntropyMetric(32, null), running = new EntropyMetric(32, 0.5);
  for (const m of [pooled, running]) { m.update(b1); m.update(b2); }
  const expectPooled = entropy(h1.map((v, i) => (v + h2[i]) / 256));
  const expectRunning = entropy(h1.map((v, i) => 0.5 * (v / 64) + 0.5 * (h2[i] / 192)));
  assert.ok(Math.abs(pooled.scores()[0] - expectPooled) < 1e-9, `pooled ${pooled.scores()[0]} vs ${expectPooled}`);
  assert.ok(Math.abs(running.scores()[0] - expectRunning) < 1e-9, `running ${running.scores()[0]} vs ${expectRunning}`);
  assert.ok(Math.abs(expectPooled - expectRunning) > 0.1, 'the two rules differ on this input');
  assert.throws(() => new EntropyMetric(32, 1), /momentum must be null or in \[0, 1\)/);
});

test('the weight metric scores conv filters or |gamma| as measureAt says, with no measurement pass', () => {
  manualSeed(3);
  const model = new ResNet18({ width: 4, inChannels: 1 });
  noGrad(() => { for (const u of lastUnits(model, 2)) u.bn!.weight.uniform_(-2, 2); });
  const n = 40;
  const data = {
    train: { images: randn([n, 1, 16, 16]).abs(), labels: tensor(Float32Array.from({ length: n }, (_, i) => i % 10), [n]).long(), classes: 10 },
    val: { images: randn([10, 1, 16, 16]).abs(), labels: tensor(Float32Array.from({ length: 10 }, (_, i) => i), [10]).long(), classes: 10 },
    norm: PLANTED_NORM,
  };
  for (const measureAt of ['bn', 'conv'] as const) {
    const units = lastUnits(model, 2);
    const expected = units.map((u) => (measureAt === 'bn'
      ? u.bn!.weight.toList().map(Math.abs)
      : Array.from({ length: u.conv.outChannels }, (_, c) => u.conv.weight.select(0, c).abs().sum().item())));
    const stages = new Set<string>();
    const r = varDefense(model, data, options('paper', { metric: 'weight', statsMomentum: null, measureAt, layers: 2, epochs: 1, batchSize: 20, lr: 1e-9 }),
      { progress: (s) => stages.add(s) });
    assert.ok(![...stages].some((s) => s.endsWith('measure')), `no measurement pass (stages: ${[...stages].join(', ')})`);
    r.perLayer.forEach((l, i) => l.scoresBefore.forEach((v, c) => assert.ok(Math.abs(v - expected[i][c]) <= 1e-5 * (1 + Math.abs(expected[i][c])), `${measureAt} ${l.name}[${c}]: ${v} vs ${expected[i][c]}`)));
  }
});

test('options that cannot apply are refused with the option named', () => {
  const vd = defenseMethod('vardefense');
  const model = new ResNet18({ width: 4, inChannels: 1 });
  const empty = { images: randn([2, 1, 16, 16]), labels: tensor([0, 1], [2]).long(), classes: 10 };
  const data = { train: empty, val: empty, norm: PLANTED_NORM };
  assert.throws(() => varDefense(model, data, options('paper', { metric: 'weight' })), /statsMomentum.*weight metric/);
  assert.throws(() => varDefense(model, data, options('paper', { startFraction: 0.6, maxFraction: 0.5 })), /startFraction <= maxFraction/);
  assert.throws(() => resolveOptions(vd, 'paper', { statsMomentum: 1 }), /statsMomentum/);
  assert.throws(() => defenseMethod('constructor'), /unknown defense 'constructor'/);
  assert.throws(() => resolveOptions(vd, '__proto__'), /unknown preset '__proto__'/);
});
