// A model of a shape no built-in dataset has (issue 28): a torchvision MobileNetV3-Small for 64x64 RGB
// images and 7 classes, saved by PyTorch, with its images as an ImageFolder of PNGs. `--dataset
// images:3x64:7` names the shape: eval gives PyTorch's accuracy to the image, defend purifies it with
// a trigger image of that size, detect reverses a trigger per class at that size, and what has no meaning for such a model (a built-in split, a wrong
// shape) is refused naming the flag.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';
import { datasetInfo } from '../../src/data/datasets';
import { python, runCli, tmpDir } from '../helpers';

const NORM = ['--norm-mean', '0.5,0.4,0.3', '--norm-std', '0.25,0.2,0.3']; // own_shape_ref.py's Normalize

test('images:<channels>x<size>:<classes>: the shape, its refusals, and no usual normalisation', () => {
  assert.deepEqual(datasetInfo('images:3x224:43'), { channels: 3, size: 224, classes: 43, mean: [0, 0, 0], std: [1, 1, 1], augment: false });
  assert.equal(datasetInfo('images:1x20:2').channels, 1);
  assert.throws(() => datasetInfo('images:2x64:7'), /dataset 'images:2x64:7': channels must be 1 or 3; the form is images:<channels>x<size>:<classes>/);
  assert.throws(() => datasetInfo('images:3x0:7'), /the size must be in 1\.\.1024/);
  assert.throws(() => datasetInfo('images:3x64:1'), /the classes must be in 2\.\./);
  assert.throws(() => datasetInfo('images:3x64'), /not of the form images:<channels>x<size>:<classes>/);
  assert.throws(() => datasetInfo('svhn'), /unknown dataset 'svhn' \(known: mnist, fashion-mnist, cifar10, cifar100, or images:/);
});

test('a torchvision model for 64x64 RGB images of 7 classes: eval gives PyTorch\'s accuracy to the image; defend purifies it with a 64x64 trigger image; detect reverses a 64x64 mask per class', () => {
  const dir = tmpDir('own-shape');
  try {
    const ref = JSON.parse(python('own_shape_ref.py', dir, 'mobilenet_v3_small', '64', '7', '70')) as { acc: number; n: number };
    const model = ['--weights', path.join(dir, 'mobilenet_v3_small.pt'), '--model', 'mobilenet_v3_small', '--dataset', 'images:3x64:7', ...NORM];
    const images = path.join(dir, 'images');
    const ev = JSON.parse(runCli('eval', ...model, '--test', images, '--attack', 'none', '--json')) as { acc: number; testImages: number; dataset: string };
    assert.equal(ev.testImages, 70);
    assert.equal(ev.dataset, 'images:3x64:7');
    // 70 images: accuracies are multiples of 1/70, so equal up to float formatting means the same count
    assert.ok(Math.abs(ev.acc - ref.acc) < 1e-6, `ACC ${ev.acc} vs PyTorch ${ref.acc}`);
    assert.throws(() => runCli('eval', ...model, '--attack', 'none'), /images:3x64:7: your own images have no built-in test split; give them as files \(--test/);
    assert.throws(() => runCli('eval', ...model.map((a) => (a === 'images:3x64:7' ? 'images:3x64:8' : a)), '--test', images, '--attack', 'none'),
      /8 classes|7 class folders/);

    // a white 6x6 square near the bottom-right corner, given by the alpha channel
    const png = new PNG({ width: 64, height: 64 });
    for (let y = 56; y < 62; y++) for (let x = 56; x < 62; x++) png.data.set([255, 255, 255, 255], 4 * (y * 64 + x));
    const trigger = path.join(dir, 'trigger.png');
    fs.writeFileSync(trigger, PNG.sync.write(png));
    const out = path.join(dir, 'defended');
    runCli('defend', ...model, '--clean', images, '--test', images, '--trigger-image', trigger, '--target', '3', '--method', 'ft', '--set', 'epochs=1', '--out', out, '--no-verdict');
    const r = JSON.parse(fs.readFileSync(path.join(out, 'ft', 'report.json'), 'utf8')) as { before: { acc: number; asr: number }; after: { acc: number; asr: number }; source: { target: { dataset: string } } };
    assert.equal(r.source.target.dataset, 'images:3x64:7');
    assert.ok(Math.abs(r.before.acc - ref.acc) < 1e-6, 'defend\'s before is eval\'s');
    assert.ok(r.after.acc >= 0 && r.after.acc <= 1 && r.after.asr >= 0 && r.after.asr <= 1);

    // detect (Neural Cleanse) on the same model and images: a mask per class of the 64x64 shape
    const det = path.join(dir, 'detect.json');
    // 10 epochs (2 steps each), and a trigger counts as found once it flips 1% of the images: the shapes
    // are what is checked here, not the search; a class with no trigger found has no mask
    runCli('detect', ...model, '--clean', images, '--preset', 'cpu-short', '--set', 'epochs=10', '--set', 'successThreshold=0.01', '--out', det);
    const d = JSON.parse(fs.readFileSync(det, 'utf8')) as { classes: { cls: number; maskL1: number | null; mask: number[] }[] };
    assert.deepEqual(d.classes.map((c) => c.cls), [0, 1, 2, 3, 4, 5, 6], 'one reversed trigger per class');
    const found = d.classes.filter((c) => c.mask.length > 0);
    assert.ok(found.length >= 1, 'a trigger found for some class (4 of 7 when written)');
    for (const c of d.classes.filter((k) => k.mask.length === 0)) assert.equal(c.maskL1, null, `class ${c.cls}: no mask, no L1`);
    for (const c of found) {
      assert.equal(c.mask.length, 64 * 64, `class ${c.cls}: a 64x64 mask`);
      assert.ok(c.maskL1 !== null && c.maskL1 > 0 && c.maskL1 <= 64 * 64 && c.mask.every((v) => v >= 0 && v <= 1), `class ${c.cls}: mask L1 ${c.maskL1}`);
    }
    assert.throws(() => runCli('defend', ...model, '--clean-size', '50', '--trigger-image', trigger, '--method', 'ft', '--out', path.join(dir, 'x'), '--no-verdict'),
      /images:3x64:7: your own images have no built-in (train|test) split/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
