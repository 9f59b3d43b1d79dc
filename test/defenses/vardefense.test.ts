import { test } from 'node:test';
import * as assert from 'assert/strict';
import { manualSeed, noGrad } from '../../src/torch';
import { ResNet18 } from '../../src/models/resnet';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { lastUnits } from '../../src/defenses/selection';
import { penaltyOf, varDefense, VarDefenseOptions } from '../../src/defenses/vardefense';
import { planted } from '../fixtures/planted';

const options = (preset: string, o: Record<string, unknown> = {}): VarDefenseOptions =>
  resolveOptions(defenseMethod('vardefense'), preset, o) as unknown as VarDefenseOptions;

test('the penalty reaches only the selected channels of the unit, and BN only when asked', () => {
  manualSeed(0);
  const m = new ResNet18({ width: 4, inChannels: 1 });
  const [u] = lastUnits(m, 1);
  noGrad(() => { u.bn!.weight.uniform_(0.5, 1.5); u.bn!.bias.uniform_(-1, 1); });
  for (const penalize of ['bn', 'conv+bn'] as const) {
    m.zeroGrad();
    penaltyOf(u, [1, 3], { penalize, penalty: 'group-l2' })!.backward();
    const touched = (g: number[], rowLen: number): number[] => [...new Set(g.flatMap((v, i) => (v !== 0 ? [Math.floor(i / rowLen)] : [])))];
    assert.deepEqual(touched(u.bn!.weight.grad!.toList(), 1), [1, 3]);
    assert.deepEqual(touched(u.bn!.bias.grad!.toList(), 1), [1, 3]);
    if (penalize === 'bn') assert.equal(u.conv.weight.grad, null, 'conv filters untouched');
    else assert.deepEqual(touched(u.conv.weight.grad!.flatten().toList(), u.conv.weight.numel / u.conv.outChannels), [1, 3]);
    const earlier = m.namedParameters().filter(([n]) => !n.startsWith('layer4.1.'));
    assert.ok(earlier.every(([, p]) => p.grad === null), 'no gradient on any other layer');
  }
  m.dispose();
});

test('selection stays in the last L layers and the threshold rises per epoch or per iteration', () => {
  const p = planted();
  const { train } = p.data;
  for (const step of ['epoch', 'iteration'] as const) {
    const o = options('paper', { layers: 3, epochs: 3, batchSize: 40, thresholdStep: step, startFraction: 0.1, maxFraction: 0.4 });
    const r = varDefense(p.model, p.data, o);
    assert.deepEqual(r.layers, ['layer4.0.shortcut.0', 'layer4.1.conv1', 'layer4.1.conv2']);
    assert.deepEqual(r.perLayer.map((l) => l.name), r.layers);
    const steps = step === 'epoch' ? 3 : 3 * Math.ceil(train.labels.numel / 40);
    assert.equal(r.thresholds.length, steps);
    assert.ok(Math.abs(r.thresholds[0] - 0.1) < 1e-12 && Math.abs(r.thresholds[steps - 1] - 0.4) < 1e-12);
    for (let i = 1; i < steps; i++) assert.ok(r.thresholds[i] >= r.thresholds[i - 1]);
    for (const l of r.perLayer) {
      assert.equal(l.selected.length, Math.round(0.4 * l.channels), `${l.name}: 40% of its channels at the end`);
      assert.equal(l.thresholdValues.length, steps);
    }
  }
});

// whether it removes the backdoor that fine-tuning keeps: efficacy.test.ts

test('lambda auto keeps the largest candidate whose validation accuracy holds', () => {
  const p = planted();
  const o = options('paper', { lambda: 'auto', lambdaCandidates: [1e-3, 1e6], lambdaTolerance: 0.02, lambdaTrialEpochs: 1, epochs: 1, batchSize: 32, layers: 10, penalize: 'bn' });
  const r = varDefense(p.model, p.data, o);
  assert.deepEqual(r.lambdaTrials.map((t) => t.lambda), [0, 1e-3, 1e6], 'a lambda-0 reference, then the candidates');
  const [reference, small, huge] = r.lambdaTrials;
  assert.ok(small.valAcc >= reference.valAcc - 0.02, 'a tiny lambda keeps the accuracy');
  assert.ok(huge.valAcc < reference.valAcc - 0.02, `lambda 1e6 wrecks it (${huge.valAcc})`);
  assert.equal(r.lambda, 1e-3);
});

test('options are validated with errors that name the option and the allowed values', () => {
  const vd = defenseMethod('vardefense');
  assert.throws(() => resolveOptions(vd, 'default', { metric: 'median' }), /option 'metric' must be one of 'variance', 'entropy', 'mean', 'weight', 'random', got 'median'/);
  assert.throws(() => resolveOptions(vd, 'default', { lamda: 1 }), /unknown option\(s\) 'lamda'/);
  assert.throws(() => resolveOptions(vd, 'nope'), /unknown preset 'nope' \(known: /);
  assert.throws(() => defenseMethod('magic'), /unknown defense 'magic' \(known: vardefense, ft/);
  assert.equal(resolveOptions(vd, 'paper', { lambda: 'auto' }).lambda, 'auto');
  assert.throws(() => resolveOptions(vd, 'paper', { lambda: 'big' }), /option 'lambda': expected a number >= 0 or 'auto'/);
});
