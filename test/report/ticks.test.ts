// Axis ticks: nice steps (1, 2, 2.5, 5 x 10^k), labels distinct at the decimals chosen.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { niceStep, niceTicks, percentScale, stepDecimals, tickLabels } from '../../src/report/ticks';
import { Rng } from '../../src/util/rng';

test("the demo's narrow ACC range (88.4% .. 90.3%) gets distinct labels, not '88% 89% 89% 90% 90%'", () => {
  const t = niceTicks(88.4, 90.3, 6);
  assert.equal(t.step, 0.5);
  assert.deepEqual(tickLabels(t), ['88.0', '88.5', '89.0', '89.5', '90.0', '90.5']);
  const p = percentScale(0.884, 0.903, 6);
  assert.equal(p.axis.format, '.1%');
  assert.deepEqual(p.scale.domain, [0.88, 0.905]);
});

test('steps are 1, 2, 2.5 or 5 x 10^k; decimals are exact for the step', () => {
  assert.equal(niceStep(0, 100, 6), 20);
  assert.equal(niceStep(0, 1, 5), 0.25);
  assert.equal(niceStep(0, 10, 11), 1);
  assert.equal(niceStep(0, 0.003, 4), 0.001);
  assert.deepEqual([stepDecimals(20), stepDecimals(2.5), stepDecimals(0.25), stepDecimals(0.001)], [0, 1, 2, 3]);
  assert.deepEqual(tickLabels(niceTicks(0, 1, 5)), ['0.00', '0.25', '0.50', '0.75', '1.00']);
  assert.deepEqual(niceTicks(5, 5, 5).values.length >= 1, true);
  assert.throws(() => niceStep(0, Number.NaN), /finite/);
});

test('random ranges: ticks cover the range, at most maxTicks + 1, evenly spaced at a nice step, labels distinct', () => {
  const rng = new Rng(3);
  for (let i = 0; i < 500; i++) {
    const scale = 10 ** (rng.int(9) - 4);
    const lo = (rng.next() - 0.5) * 100 * scale, hi = lo + rng.next() * 50 * scale + 1e-9;
    const maxTicks = 3 + rng.int(6);
    const t = niceTicks(lo, hi, maxTicks);
    const at = `[${lo}, ${hi}] max ${maxTicks}: ${JSON.stringify(t)}`;
    assert.ok(t.values[0] <= lo + 1e-9 * Math.abs(lo) && t.values[t.values.length - 1] >= hi - 1e-9 * Math.abs(hi), `covers ${at}`);
    assert.ok(t.values.length <= maxTicks + 1, `count ${at}`);
    const m = t.step / 10 ** Math.floor(Math.log10(t.step) + 1e-12);
    assert.ok([1, 2, 2.5, 5].some((n) => Math.abs(m - n) < 1e-9), `nice step ${at}`);
    for (let j = 1; j < t.values.length; j++) assert.ok(Math.abs(t.values[j] - t.values[j - 1] - t.step) < 1e-9 * t.step, `spacing ${at}`);
    const labels = tickLabels(t);
    assert.equal(new Set(labels).size, labels.length, `distinct ${at}`);
  }
});
