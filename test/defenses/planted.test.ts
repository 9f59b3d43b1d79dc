import { test } from 'node:test';
import * as assert from 'assert/strict';
import { plantBackdoor, PLANTED_NORM } from '../fixtures/planted';
import { evaluateModel } from '../../src/train/metrics';

test('the planted-backdoor fixture trains in seconds to a working backdoor', () => {
  const t0 = Date.now();
  const p = plantBackdoor();
  const m = evaluateModel(p.model, p.test, PLANTED_NORM, p.attack);
  assert.ok(m.acc > 0.9, `clean ACC ${m.acc}`);
  assert.ok(m.asr! > 0.9, `ASR ${m.asr}`);
  assert.equal(p.clean.labels.numel, 300);
  assert.deepEqual([p.data.train.labels.numel, p.data.val.labels.numel], [150, 150]);
  process.stderr.write(`planted backdoor: ACC ${m.acc.toFixed(3)} ASR ${m.asr!.toFixed(3)} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
});
