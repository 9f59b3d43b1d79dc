import { test } from 'node:test';
import * as assert from 'assert/strict';
import { adversarialImages, flipHistogram } from '../../src/defenses/adversarial';
import { plantBackdoor } from '../fixtures/planted';

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
