import { test } from 'node:test';
import * as assert from 'assert/strict';
import { withoutTestSet } from '../../src/data/datasets';
import { searchTriggers, TRIGGER_SEARCH_DEFAULTS } from '../../src/defenses/trigger-search';
import { adversarialImages, flipHistogram } from '../../src/defenses/adversarial';
import { plantBackdoor } from '../fixtures/planted';

test('the class search finds the planted target by the smallest mask, and leaves the model as it was', () => {
  // 28x28 as the real data (on the 16x16 fixture the synthetic classes are reachable with small masks too)
  const p = plantBackdoor({ seed: 2, size: 28 });
  const before = p.model.stateDict().get('linear.weight')!.toList();
  const r = withoutTestSet(() => searchTriggers(p.model, p.clean.images, p.clean.labels, p.data.norm, 10, { ...TRIGGER_SEARCH_DEFAULTS, steps: 60 }));
  try {
    assert.deepEqual(p.model.stateDict().get('linear.weight')!.toList(), before, 'the model is only read');
    const [t, ...others] = r.triggers;
    assert.equal(r.suspect, 0, `masks ${r.triggers.map((x) => x.maskL1.toFixed(1)).join(' ')}`);
    assert.ok(t.success > 0.8, `the found trigger works (${t.success})`);
    // the planted trigger is 3x3: its mask is a few pixels, the synthetic classes need several times more
    assert.ok(Math.min(...others.map((k) => k.maskL1)) > 2 * t.maskL1, `masks ${r.triggers.map((x) => x.maskL1.toFixed(1)).join(' ')}`);
    assert.ok(r.flagged, `anomaly index ${t.anomalyIndex}`);
  } finally {
    for (const x of r.triggers) { x.mask.dispose(); x.pattern.dispose(); }
  }
});

test('adversarial copies stay within eps of the images and in [0, 1], and their flips are counted per class', () => {
  const p = plantBackdoor({ seed: 1 });
  const eps = 0.1;
  const set = adversarialImages(p.model, p.clean.images, p.clean.labels, p.data.norm, { eps, steps: 3, batchSize: 64 });
  try {
    const x = p.clean.images.to('float32').div(255);
    const d = set.images.sub(x).abs().amax().item();
    assert.ok(d <= eps + 1e-6 && d > eps / 2, `max |delta| ${d}`);
    assert.ok(set.images.neg().amax().item() <= 0 && set.images.amax().item() <= 1);
    const f = flipHistogram(set, 10);
    const changed = Array.from(set.labels).filter((l, i) => l !== set.cleanLabels[i]).length;
    assert.equal(f.flipped, changed);
    assert.equal(f.into.reduce((a, b) => a + b, 0), changed);
    assert.ok(f.flipped > 0, 'a 0.1 bound moves some images on this small model');
  } finally {
    set.images.dispose();
  }
});
