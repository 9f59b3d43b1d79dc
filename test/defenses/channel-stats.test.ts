import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { ChannelStats } from '../../src/defenses/channel-stats';

test('exact mode equals a direct two-pass computation over all minibatches', () => {
  T.manualSeed(1);
  const batches = [T.randn([5, 3, 4, 4]).mul(2).add(1), T.randn([7, 3, 4, 4]), T.randn([2, 3, 4, 4]).mul(0.5).sub(3)];
  const s = new ChannelStats({ momentum: null });
  for (const b of batches) s.update(b);
  const all = T.cat(batches, 0).to('float64');
  // two passes: mean first, then mean squared deviation, per channel
  for (let c = 0; c < 3; c++) {
    const v = Array.from(all.select(1, c).toArray() as Float64Array);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
    assert.ok(Math.abs(s.means()[c] - mean) < 1e-12, `mean of channel ${c}`);
    assert.ok(Math.abs(s.variances()[c] - variance) < 1e-10, `variance of channel ${c}: ${s.variances()[c]} vs ${variance}`);
  }
});

test('momentum mode follows stat <- m * stat + (1 - m) * batch stat', () => {
  const s = new ChannelStats({ momentum: 0.9 });
  const b1 = T.tensor([1, 3, 10, 10], [2, 2, 1, 1]); // channel 0: {1, 10}, channel 1: {3, 10}
  const b2 = T.tensor([5, 5, 5, 9], [2, 2, 1, 1]);   // channel 0: {5, 5},  channel 1: {5, 9}
  s.update(b1);
  s.update(b2);
  const v1 = [20.25, 12.25], v2 = [0, 4];
  const m1 = [5.5, 6.5], m2 = [5, 7];
  for (let c = 0; c < 2; c++) {
    assert.ok(Math.abs(s.variances()[c] - (0.9 * v1[c] + 0.1 * v2[c])) < 1e-12);
    assert.ok(Math.abs(s.means()[c] - (0.9 * m1[c] + 0.1 * m2[c])) < 1e-12);
  }
  assert.equal(s.batches, 2);
  assert.throws(() => new ChannelStats({ momentum: 1 }), /momentum must be null or in \[0, 1\)/);
  assert.throws(() => s.update(T.zeros([1, 3, 1, 1])), /channel count changed from 2 to 3/);
});

test('float32 statistics follow the float64 ones to float32 precision, in both modes', () => {
  T.manualSeed(2);
  const batches = [T.randn([16, 4, 5, 5]).mul(3).add(2), T.randn([16, 4, 5, 5]), T.randn([9, 4, 5, 5]).mul(0.1).sub(1)];
  for (const momentum of [null, 0.9]) {
    const s32 = new ChannelStats({ momentum, dtype: 'float32' }), s64 = new ChannelStats({ momentum, dtype: 'float64' });
    for (const b of batches) { s32.update(b); s64.update(b); }
    for (let c = 0; c < 4; c++) {
      for (const [a, b] of [[s32.means()[c], s64.means()[c]], [s32.variances()[c], s64.variances()[c]]]) {
        assert.ok(Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)), `momentum ${momentum}, channel ${c}: ${a} vs ${b}`);
      }
    }
    // and a second read gives the same numbers (reading does not move the state)
    assert.deepEqual(Array.from(s32.variances()), Array.from(s32.variances()));
  }
});

test('keepMean false keeps the same running variance (two-pass batch variances), and refuses the mean', () => {
  T.manualSeed(3);
  const batches = [T.randn([6, 4, 3, 3]).mul(2), T.randn([6, 4, 3, 3]).add(1), T.randn([3, 4, 3, 3]).mul(0.1)];
  for (const dtype of ['float32', 'float64'] as const) {
    const both = new ChannelStats({ momentum: 0.9, dtype }), only = new ChannelStats({ momentum: 0.9, dtype, keepMean: false });
    for (const b of batches) { both.update(b); only.update(b); }
    const a = only.variances(), e = both.variances();
    for (let c = 0; c < 4; c++) assert.ok(Math.abs(a[c] - e[c]) <= (dtype === 'float32' ? 2e-6 : 1e-13) * e[c], `${dtype} channel ${c}: ${a[c]} vs ${e[c]}`);
    assert.equal(only.batches, 3);
    assert.throws(() => only.means(), /mean is not kept/);
    assert.throws(() => only.update(T.randn([2, 5, 3, 3])), /channel count changed from 4 to 5/);
  }
  // the exact mode needs the mean to pool batches: it keeps it
  const exact = new ChannelStats({ momentum: null, keepMean: false });
  for (const b of batches) exact.update(b);
  assert.equal(exact.means().length, 4);
});
