// torchvision's efficientnet_b0 (b3 with eval logits, the rest by structure): state dicts load by name;
// logits and gradients as PyTorch's (stochastic depth at p = 0 on both sides). Stochastic depth itself:
// identity in eval, whole samples dropped and the rest scaled by 1/(1-p) in training.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { StochasticDepth } from '../../src/models/torchvision-ops';
import { checkZooParity } from './zoo-parity';

test('torchvision efficientnet_b0..b7: torch.save state dicts load by name, eval logits, train-mode logits and gradients as torchvision', () => {
  checkZooParity([
    { name: 'efficientnet_b0', inChannels: 3, size: 64, batch: 2 },
    { name: 'efficientnet_b3', inChannels: 1, size: 64, batch: 2, evalOnly: true },
    ...(['efficientnet_b1', 'efficientnet_b2', 'efficientnet_b4', 'efficientnet_b5', 'efficientnet_b6', 'efficientnet_b7'] as const).map((name) => ({ name, inChannels: 3, size: 64, batch: 0 })),
  ]);
});

test('stochastic depth: identity in eval and at p = 0; in training drops whole samples and scales the rest by 1/(1-p), repeatably with a seed', () => {
  const x = T.ones([400, 3, 2, 2]);
  const sd = new StochasticDepth(0.25, 'row');
  sd.eval();
  assert.equal(sd.call(x), x);
  sd.train();
  T.manualSeed(1);
  const y = sd.call(x);
  const perSample = y.flatten(1);
  const mins = perSample.amin(1).toList(), maxs = perSample.amax(1).toList();
  for (let i = 0; i < 400; i++) {
    assert.equal(mins[i], maxs[i], 'a sample is dropped or kept whole');
    assert.ok(mins[i] === 0 || Math.abs(mins[i] - 1 / 0.75) < 1e-6, `kept samples are scaled by 1/(1-p): ${mins[i]}`);
  }
  const dropped = mins.filter((v) => v === 0).length / 400;
  assert.ok(Math.abs(dropped - 0.25) < 0.08, `about p of the samples are dropped: ${dropped}`);
  T.manualSeed(1);
  assert.deepEqual(sd.call(x).toList(), y.toList(), 'the same seed drops the same samples');
  assert.equal(new StochasticDepth(0, 'row').call(x), x);
});
