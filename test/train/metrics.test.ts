import { test } from 'node:test';
import * as assert from 'assert/strict';
import { accuracyOf, perClassAccuracy } from '../../src/train/metrics';
import { defenderSplit } from '../../src/data/split';
import * as T from '../../src/torch';

test('accuracy and per-class accuracy on hand-made predictions', () => {
  const labels = [0, 0, 1, 1, 2, 2, 2, 3];
  const preds = [0, 1, 1, 1, 2, 0, 2, 0];
  assert.equal(accuracyOf(preds, labels), 5 / 8);
  assert.deepEqual(perClassAccuracy(preds, labels, 5).map((v) => (Number.isNaN(v) ? 'nan' : v)), [0.5, 1, 2 / 3, 0, 'nan']);
  // ASR = share of triggered non-target images predicted as the target
  assert.equal(accuracyOf([7, 7, 3, 7], [7, 7, 7, 7]), 0.75);
  assert.throws(() => accuracyOf([1], [1, 2]), /1 predictions for 2 labels/);
});

test("the defender's clean split is 5%, disjoint from the attacker's set, and seeded", () => {
  const n = 1000;
  const set = { images: T.tensor(Uint8Array.from({ length: n }, (_, i) => i % 256), [n, 1, 1, 1]), labels: T.arange(0, n), classes: 10 };
  const s = defenderSplit(set, 0.05, 3);
  assert.equal(s.clean.labels.numel, 50);
  assert.equal(s.attacker.labels.numel, 950);
  const a = new Set(s.attacker.labels.toList()), c = s.clean.labels.toList();
  assert.ok(c.every((i) => !a.has(i)), 'disjoint');
  assert.equal(new Set([...a, ...c]).size, n, 'together they cover the training set');
  assert.deepEqual(Array.from(defenderSplit(set, 0.05, 3).cleanIndices), Array.from(s.cleanIndices));
  assert.notDeepEqual(Array.from(defenderSplit(set, 0.05, 4).cleanIndices), Array.from(s.cleanIndices));
});
