// A grid's pace line: cells run so far, their time, and the time left at their mean, from an injected clock.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { gridPace } from '../../src/pipeline/progress';
import { duration } from '../../src/util/format';

test('duration: seconds, minutes, hours', () => {
  assert.deepEqual([duration(0.4), duration(89), duration(91), duration(5399), duration(5400), duration(12 * 3600 + 1800)],
    ['0 s', '89 s', '2 min', '90 min', '1.5 h', '12.5 h']);
});

test('gridPace: the mean of the cells run here times the cells not yet reached', () => {
  let ms = 1000;
  const pace = gridPace(() => ms);
  ms += 600_000; // the first cell (index 3 of 10, three done earlier) took 10 minutes: six to go
  assert.equal(pace(3, 10), ' · 1 run in 10 min, at most 60 min left at this pace');
  ms += 1_200_000; // the next one 20 minutes: 15 min a cell, five to go
  assert.equal(pace(4, 10), ' · 2 run in 30 min, at most 75 min left at this pace');
  ms += 60_000;
  assert.equal(pace(9, 10), ' · 3 run in 31 min', 'nothing left after the last cell');
});
