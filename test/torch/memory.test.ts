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
  for (let i = 0; i < 300; i++) step();
  const live0 = T.memoryStats().live;
  const rss = [process.memoryUsage().rss];
  for (let i = 1; i <= 2000; i++) {
    step();
    if (i % 1000 === 0) rss.push(process.memoryUsage().rss);
  }
  const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
  assert.equal(T.memoryStats().live, live0, 'live tensor count changed');
  // a leak of one batch-sized tensor per step would add ~300 MiB; allocator and V8 settling stay far below
  assert.ok(rss[2] - rss[0] < 32 * 2 ** 20, `RSS grew ${mib(rss[2] - rss[0])} MiB over 2,000 steps`);
  assert.ok(rss[2] - rss[1] < 8 * 2 ** 20, `RSS still growing: ${mib(rss[2] - rss[1])} MiB over the last 1,000 steps`);
});
