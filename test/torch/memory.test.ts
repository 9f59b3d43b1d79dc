// Memory stays flat over a long training loop with deterministic release (no GC involved).
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { nn } from '../../src/torch';

test('RSS and live tensors stay stable over 2,000 training steps', () => {
  T.manualSeed(0);
  const model = new nn.Sequential(new nn.Conv2d(1, 8, 3, { padding: 1 }), new nn.BatchNorm2d(8), new nn.ReLU(),
    new nn.AdaptiveAvgPool2d(1), new nn.Flatten(), new nn.Linear(8, 10));
  const opt = new T.optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const x = T.randn([32, 1, 12, 12]), y = T.randint(0, 10, [32]);
  const step = (): void => {
    T.scope(() => { T.F.crossEntropy(model.call(x), y).backward(); });
    opt.step();
    opt.zeroGrad();
  };
  for (let i = 0; i < 200; i++) step();
  const live0 = T.memoryStats().live;
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 2000; i++) step();
  const growthMiB = (process.memoryUsage().rss - rss0) / 2 ** 20;
  assert.equal(T.memoryStats().live, live0, 'live tensor count changed');
  assert.ok(growthMiB < 16, `RSS grew ${growthMiB.toFixed(1)} MiB over 2,000 steps`);
});
