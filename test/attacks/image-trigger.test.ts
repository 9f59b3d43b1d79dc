// A trigger from image files: pixel-exact against x' = round(x + (alpha m / 255) (t - x)) (half to
// even) for the three mask rules (mask file, the trigger's alpha channel, every pixel), as JSON.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';
import * as T from '../../src/torch';
import { imageTriggerFromFiles, ImageTriggerSpec } from '../../src/attacks/image-trigger';
import { applyTrigger, describeTrigger, validateTrigger } from '../../src/attacks/triggers';
import { attackIssues } from '../../src/attacks/poison';
import { trainConfigIssues, DEFAULT_TRAIN } from '../../src/train/run';
import { Rng } from '../../src/util/rng';
import { tmpDir } from '../helpers';

const S = 8;

function writePng(file: string, rgba: (i: number) => [number, number, number, number], colorType: 2 | 6 = 6): void {
  const png = new PNG({ width: S, height: S });
  for (let i = 0; i < S * S; i++) png.data.set(rgba(i), 4 * i);
  fs.writeFileSync(file, PNG.sync.write(png, { colorType }));
}

const halfEven = (v: number): number => {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
};

/** The formula, computed here in plain doubles for [N, C, S, S] images. */
function expected(x: Uint8Array, n: number, c: number, t: number[][], m: number[], alpha: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++)
    for (let k = 0; k < c; k++)
      for (let p = 0; p < S * S; p++) {
        const v = x[(i * c + k) * S * S + p], w = (alpha * m[p]) / 255;
        out.push(Math.min(255, Math.max(0, halfEven(v + (t[k][p] - v) * w))));
      }
  return out;
}

const rgbOf = (i: number): [number, number, number] => [(i * 37) % 256, (i * 91 + 13) % 256, (255 - i * 4) % 256];
const L = ([r, g, b]: [number, number, number]): number => (19595 * r + 38470 * g + 7471 * b + 32768) >>> 16;

test('image triggers match the formula pixel for pixel: mask file, alpha channel, every pixel; grey and RGB', () => {
  const dir = tmpDir('imgtrig');
  const rng = new Rng(3);
  const n = 3;
  const trigger = path.join(dir, 'trigger.png'), opaque = path.join(dir, 'opaque.png'), mask = path.join(dir, 'mask.png');
  const alphaOf = (i: number): number => [0, 255, 128, 1, 64][i % 5];
  writePng(trigger, (i) => [...rgbOf(i), alphaOf(i)]);
  writePng(opaque, (i) => [...rgbOf(i), 255], 2);
  // mask: dark-but-not-black pixels count, black and fully transparent ones do not
  const maskOn = (i: number): boolean => i % 3 === 0;
  writePng(mask, (i) => (maskOn(i) ? [1, 0, 0, 255] : i % 3 === 1 ? [0, 0, 0, 255] : [200, 200, 200, 0]));

  for (const channels of [1, 3] as const) {
    const x = Uint8Array.from({ length: n * channels * S * S }, () => rng.int(256));
    const images = T.tensor(x, [n, channels, S, S]);
    const t = channels === 3 ? [0, 1, 2].map((k) => Array.from({ length: S * S }, (_, i) => rgbOf(i)[k])) : [Array.from({ length: S * S }, (_, i) => L(rgbOf(i)))];
    const cases: [string, ImageTriggerSpec, number[], number][] = [
      ['alpha channel', imageTriggerFromFiles(trigger, undefined, undefined, { channels, size: S }), Array.from({ length: S * S }, (_, i) => alphaOf(i)), 1],
      ['alpha channel, alpha 0.5', imageTriggerFromFiles(trigger, undefined, 0.5, { channels, size: S }), Array.from({ length: S * S }, (_, i) => alphaOf(i)), 0.5],
      ['mask file, alpha 0.5', imageTriggerFromFiles(trigger, mask, 0.5, { channels, size: S }), Array.from({ length: S * S }, (_, i) => (maskOn(i) ? 255 : 0)), 0.5],
      ['every pixel', imageTriggerFromFiles(opaque, undefined, undefined, { channels, size: S }), new Array(S * S).fill(255), 1],
    ];
    for (const [what, spec, m, alpha] of cases) {
      const viaJson = JSON.parse(JSON.stringify(spec)) as ImageTriggerSpec; // attack specs travel as JSON
      const got = [...(applyTrigger(images, viaJson, new Rng(0)).toArray() as Uint8Array)];
      const want = expected(x, n, channels, t, m, alpha);
      assert.deepEqual(got, want, `${what}, ${channels} channel(s)`);
      // and the formula is not the identity: the trigger changes pixels where m > 0 and no others
      const changed = got.filter((v, i) => v !== x[i]).length;
      assert.ok(changed > 0, `${what}: nothing changed`);
      for (let i = 0; i < got.length; i++) if (m[i % (S * S)] === 0) assert.equal(got[i], x[i], `${what}: pixel ${i} outside the mask changed`);
    }
    // alpha 1 over opaque pixels stamps the pattern itself
    const stamped = applyTrigger(images, cases[3][1], new Rng(0)).toArray() as Uint8Array;
    for (let i = 0; i < n; i++) assert.deepEqual([...stamped.subarray(i * channels * S * S, (i + 1) * channels * S * S)], t.flat());
  }
  fs.rmSync(dir, { recursive: true });
});

test('image triggers: described, validated against the images and the dataset, accepted in a training config', () => {
  const dir = tmpDir('imgtrig2');
  const trigger = path.join(dir, 'trigger.png'), black = path.join(dir, 'black.png');
  writePng(trigger, (i) => [...rgbOf(i), i < 10 ? 255 : 0]);
  writePng(black, () => [0, 0, 0, 255], 2);
  const spec = imageTriggerFromFiles(trigger, undefined, undefined, { channels: 1, size: S });
  assert.equal(describeTrigger(spec), `image trigger ${trigger}, 8x8, 10 of 64 pixels`);
  assert.throws(() => validateTrigger(spec, 28, 28), /image trigger is 8x8, the images are 28x28/);
  assert.throws(() => applyTrigger(T.zeros([1, 3, S, S], { dtype: 'uint8' }), spec, new Rng(0)), /image trigger has 1 channels, the images 3/);
  assert.throws(() => imageTriggerFromFiles(trigger, undefined, undefined, { channels: 1, size: 28 }), (e: Error) => e.message.includes(trigger) && /image is 8x8, expected 28x28/.test(e.message));
  assert.throws(() => imageTriggerFromFiles(trigger, black, undefined, { channels: 1, size: S }), (e: Error) => e.message.includes(black) && /selects no pixel \(all black\)/.test(e.message));
  assert.throws(() => imageTriggerFromFiles(trigger, undefined, 1.5, { channels: 1, size: S }), /alpha must be in \(0, 1\], got 1.5/);
  assert.throws(() => validateTrigger({ ...spec, pattern: spec.pattern.slice(0, 8) }, S, S), /pattern holds 6 bytes, expected 64/);
  // a 28x28 grey trigger for MNIST: accepted by the attack checks and the config schema; wrong size refused
  const mnistTrigger = path.join(dir, 'mnist.png');
  const png = new PNG({ width: 28, height: 28 });
  png.data.fill(255);
  fs.writeFileSync(mnistTrigger, PNG.sync.write(png));
  const attack = { trigger: imageTriggerFromFiles(mnistTrigger, undefined, undefined, { channels: 1, size: 28 }), poisonRatio: 0.1, target: 0, mode: 'all-to-one' as const, seed: 1 };
  assert.deepEqual(attackIssues(attack, 'mnist'), []);
  assert.deepEqual(trainConfigIssues(JSON.parse(JSON.stringify({ ...DEFAULT_TRAIN, dataset: 'mnist', model: 'small-cnn', attack }))), []);
  assert.match(attackIssues(attack, 'cifar10').map((i) => i.message).join('; '), /28x28, the images are 32x32/);
  fs.rmSync(dir, { recursive: true });
});
