// The shared trigger search (src/defenses/trigger-search.ts) stamps every class's block into one
// forward pass up to PASS_PIXELS of input, and splits the classes over several passes beyond it (large
// images, many classes), so that a 224x224 model's search does not hold ten classes' activations at
// once. The split must change memory only: each class's mask and pattern get gradient from its own
// block, with the model frozen in eval mode.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { manualSeed, randn, tensor } from '../../src/torch';
import { createModel } from '../../src/models';
import { PASS_PIXELS, searchTriggers, TRIGGER_SEARCH_DEFAULTS } from '../../src/defenses/trigger-search';

/** An untrained small CNN and n random images of `channels` x side x side, labels in turn over the classes. */
function searchSetting(seed: number, channels: number, classes: number, side: number, n: number) {
  manualSeed(seed);
  const model = createModel({ name: 'small-cnn', inChannels: channels, numClasses: classes, imageSize: side });
  const images = randn([n, channels, side, side]).mul(60).add(128).clamp(0, 255).to('uint8');
  const labels = tensor(Float64Array.from({ length: n }, (_, i) => i % classes), [n]).long();
  const norm = { mean: new Array<number>(channels).fill(0.5), std: new Array<number>(channels).fill(0.25) };
  return { model, images, labels, norm };
}

test('the trigger search gives the same triggers in one pass or in one pass per class', () => {
  const classes = 4, side = 24;
  const { model, images, labels, norm } = searchSetting(3, 3, classes, side, 40);
  const o = { ...TRIGGER_SEARCH_DEFAULTS, steps: 6, batchSize: 8 };
  const plane = side * side;
  assert.ok(Math.floor(PASS_PIXELS / (o.batchSize * plane)) >= classes, 'by default these images fit in one pass');
  const onePass = searchTriggers(model, images, labels, norm, classes, o);
  // one class per pass: the pass holds one block of batchSize images
  const perClass = searchTriggers(model, images, labels, norm, classes, { ...o, passPixels: o.batchSize * plane });
  for (let c = 0; c < classes; c++) {
    const [a, b] = [onePass.triggers[c], perClass.triggers[c]];
    const diff = (x: ArrayLike<number>, y: ArrayLike<number>): number => Math.max(...Array.from(x, (v, i) => Math.abs(v - y[i])));
    const dm = diff(a.mask.toArray() as Float32Array, b.mask.toArray() as Float32Array);
    const dp = diff(a.pattern.toArray() as Float32Array, b.pattern.toArray() as Float32Array);
    assert.ok(dm < 1e-4 && dp < 1e-4, `class ${c}: masks differ by ${dm}, patterns by ${dp}`);
    assert.ok(Math.abs(a.maskL1 - b.maskL1) < 1e-2, `class ${c}: mask L1 ${a.maskL1} vs ${b.maskL1}`);
    for (const t of [a, b]) { t.mask.dispose(); t.pattern.dispose(); }
  }
  assert.equal(onePass.suspect, perClass.suspect);
  // the search moved the masks from their random start (two untouched starts would agree vacuously)
  const start = searchTriggers(model, images, labels, norm, classes, { ...o, steps: 0 });
  const moved = start.triggers.map((t, c) => Math.abs(t.maskL1 - onePass.triggers[c].maskL1));
  assert.ok(Math.max(...moved) > 1, `mask L1 moved by at most ${Math.max(...moved)} in ${o.steps} steps`);
  for (const t of start.triggers) { t.mask.dispose(); t.pattern.dispose(); }
  // a split that does not divide the classes evenly (3 + 1)
  const uneven = searchTriggers(model, images, labels, norm, classes, { ...o, passPixels: 3 * o.batchSize * plane });
  for (const [c, t] of uneven.triggers.entries()) {
    assert.ok(Math.abs(t.maskL1 - perClass.triggers[c].maskL1) < 1e-2, `class ${c}: ${t.maskL1} vs ${perClass.triggers[c].maskL1}`);
    t.mask.dispose(); t.pattern.dispose();
  }
});

test('patternStart starts every class\'s pattern at one value (0: black), where the default start is random', () => {
  const classes = 3;
  const { model, images, labels, norm } = searchSetting(5, 1, classes, 12, 24);
  const o = { ...TRIGGER_SEARCH_DEFAULTS, steps: 3, batchSize: 8 };
  const mean = (t: { pattern: { toArray(): unknown } }): number => { const a = t.pattern.toArray() as Float32Array; return a.reduce((s, v) => s + v, 0) / a.length; };
  const black = searchTriggers(model, images, labels, norm, classes, { ...o, patternStart: 0 });
  const random = searchTriggers(model, images, labels, norm, classes, o);
  for (let c = 0; c < classes; c++) {
    // three Adam steps of lr 0.1 move a logit by about 0.3: a black start stays near 0, a random one near 1/2
    assert.ok(mean(black.triggers[c]) < 0.05, `class ${c}: black start, pattern mean ${mean(black.triggers[c])}`);
    assert.ok(Math.abs(mean(random.triggers[c]) - 0.5) < 0.15, `class ${c}: random start, pattern mean ${mean(random.triggers[c])}`);
  }
  for (const t of [...black.triggers, ...random.triggers]) { t.mask.dispose(); t.pattern.dispose(); }
  model.dispose();
});
