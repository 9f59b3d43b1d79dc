import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { EntropyMetric, makeMetric, weightScores } from '../../src/defenses/metrics';

test('binned entropy: a constant channel scores 0, a spread one scores higher', () => {
  const m = new EntropyMetric(32);
  const x = T.stack([T.full([64], 3), T.arange(0, 64, 1, { dtype: 'float32' })], 0).t().reshape(64, 2, 1, 1);
  m.update(x);
  m.update(x);
  const [constant, spread] = m.scores();
  assert.ok(Math.abs(constant) < 1e-12, `constant channel entropy ${constant}`);
  // 64 evenly spread values fall into the 11 middle bins of 32 spanning 3x their range: about log(11)
  assert.ok(spread > Math.log(10) && spread < Math.log(12), `spread channel entropy ${spread}`);
});

test('variance and mean metrics rank channels; weight scores are filter L1 norms', () => {
  const v = makeMetric('variance', null), mean = makeMetric('mean', null);
  const x = T.tensor([0, 5, 10, 5, 0, 5, 10, 5], [4, 2, 1, 1]); // channel 0: {0,10,0,10}, channel 1: all 5
  v.update(x);
  mean.update(x);
  assert.deepEqual(Array.from(v.scores()), [25, 0]);
  assert.deepEqual(Array.from(mean.scores()), [5, 5]);
  const w = T.tensor([1, -2, 0, 0, 0.5, -0.5, 3, 0], [2, 1, 2, 2]);
  assert.deepEqual(Array.from(weightScores(w)), [3, 4]);
});

test('float32 entropy bins as float64 does on values away from the bin edges', () => {
  // 0..63 over 32 bins spanning 3x the range: edges fall at multiples of 6.09..., never on an integer
  const x = T.stack([T.full([64], 3), T.arange(0, 64, 1, { dtype: 'float32' })], 0).t().reshape(64, 2, 1, 1);
  for (const momentum of [null, 0.9]) {
    const m32 = new EntropyMetric(32, momentum, 'float32'), m64 = new EntropyMetric(32, momentum, 'float64');
    for (const m of [m32, m64]) { m.update(x); m.update(x.mul(0.5)); }
    const a = m32.scores(), b = m64.scores();
    for (let c = 0; c < 2; c++) assert.ok(Math.abs(a[c] - b[c]) < 1e-9, `momentum ${momentum}, channel ${c}: ${a[c]} vs ${b[c]}`);
    assert.ok(b[1] > 1, 'the spread channel has entropy');
  }
});
