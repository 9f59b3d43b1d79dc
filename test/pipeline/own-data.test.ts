// The defender's own data through `defend` and `eval`: clean images as an ImageFolder of PNGs or a .npz
// (written here from a synthetic MNIST), a trigger given as an image and a mask that reproduce the
// built-in white 3x3 patch pixel for pixel (so ASR equals the patch attack's), report reuse keyed on
// the images' and trigger's content, and wrong files refused naming the flag and the file.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';
import { applyTrigger, PatchSpec } from '../../src/attacks/triggers';
import { loadImageSet } from '../../src/data/datasets';
import { syntheticImages, writeSyntheticIdx } from '../../src/data/synthetic';
import { AttackFlags } from '../../src/pipeline/attack-spec';
import { defendRequest, DefendFlags, evalTarget, EvalFlags } from '../../src/pipeline/flag-requests';
import { imageTriggerAttack, userCleanSource, userTriggeredImages } from '../../src/pipeline/user-inputs';
import { stratifiedDraw } from '../../src/data/split';
import { isChunks } from '../../src/data/image-set';
import { imageFolderChunks } from '../../src/data/user-images';
import { datasetInfo } from '../../src/data/datasets';
import { evaluateModel } from '../../src/train/metrics';
import { loadModel } from '../../src/pipeline/model';
import { setDigest } from '../../src/pipeline/defend';
import type { AttackSpec } from '../../src/attacks/poison';
import { withoutTestSet } from '../../src/data/test-set-lock';
import { tensor } from '../../src/torch';
import { DEFAULT_TRAIN, train, TrainConfig } from '../../src/train/run';
import { Rng } from '../../src/util/rng';
import { maxAbsDiff, repoRoot, tmpDir } from '../helpers';
import { npy, storedZip } from '../hostile-files';
import { collectRows } from '../../src/report/summary';

const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const S = 28, N = 120;

function cliRun(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, VARDEFENSE_DEBUG: '' } });
}
function ok(...args: string[]): { stdout: string; stderr: string } {
  const r = cliRun(...args);
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return r;
}
/** The one-line error of a failing command. */
function fails(...args: string[]): string {
  const r = cliRun(...args);
  assert.equal(r.status, 1, `exit status of ${args.join(' ')}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  return lines[0];
}

/** A grey PNG of side `size` from pixel values (RGB, r = g = b: PIL's L gives the value back exactly). */
function writeGreyPng(file: string, grey: (i: number) => number, size = S): void {
  const png = new PNG({ width: size, height: size });
  for (let i = 0; i < size * size; i++) { const v = grey(i); png.data.set([v, v, v, 255], 4 * i); }
  fs.writeFileSync(file, PNG.sync.write(png, { colorType: 2 }));
}

/** np.savez(file, x=images (N, H, W[, C]) uint8, y=labels int64), stored. */
function writeNpz(file: string, x: Uint8Array, shape: number[], y: ArrayLike<number>): void {
  const labels = Buffer.from(BigInt64Array.from(Array.from(y), BigInt).buffer);
  fs.writeFileSync(file, storedZip([['x.npy', npy('|u1', shape, Buffer.from(x))], ['y.npy', npy('<i8', [y.length], labels)]]));
}

const root = tmpDir('own-data');
const data = path.join(root, 'data');
writeSyntheticIdx(path.join(data, 'mnist'), { train: 1000, test: 200 });

// the suspicious model: small-cnn backdoored with a white 3x3 patch at the bottom-right corner (measured: ASR
// 0.42, partial, so that equal ASRs under two triggers mean the same images were classified)
const patch: PatchSpec = { kind: 'patch', size: 3, pattern: 'white', position: 'fixed', offset: [0, 0], seed: 1 };
const cfg: TrainConfig = {
  ...DEFAULT_TRAIN, dataset: 'mnist', model: 'small-cnn', epochs: 1, batchSize: 32, lr: 0.02, evalEachEpoch: false, cleanFraction: 0.1,
  attack: { trigger: patch, poisonRatio: 0.1, target: 0, mode: 'all-to-one', seed: 1 },
};
train(cfg, path.join(root, 'run'), { dataDir: data }).model.dispose();
const weights = path.join(root, 'run', 'model.safetensors');

// the defender's clean images: N synthetic digits other than the training set's, as folders 0..9 of PNGs and as a .npz
const own = syntheticImages(N, 1, S, 10, 77);
const folder = path.join(root, 'clean');
for (let i = 0; i < N; i++) {
  const dir = path.join(folder, String(own.labels[i]));
  fs.mkdirSync(dir, { recursive: true });
  writeGreyPng(path.join(dir, `img${String(i).padStart(3, '0')}.png`), (p) => own.images[i * S * S + p]);
}
// the folder's order: class by class, files by name, i.e. by i within a class
const order = Array.from({ length: N }, (_, i) => i).sort((a, b) => own.labels[a] - own.labels[b] || a - b);
const npz = path.join(root, 'clean.npz');
writeNpz(npz, Uint8Array.from(order.flatMap((i) => [...own.images.subarray(i * S * S, (i + 1) * S * S)])), [N, S, S], order.map((i) => own.labels[i]));

// the trigger as files: noise everywhere, white in the bottom-right 3x3; the mask keeps only that square
const inCorner = (p: number): boolean => p % S >= S - 3 && Math.floor(p / S) >= S - 3;
const noise = new Rng(5);
const triggerPng = path.join(root, 't.png'), maskPng = path.join(root, 'm.png');
writeGreyPng(triggerPng, (p) => (inCorner(p) ? 255 : noise.int(255)));
writeGreyPng(maskPng, (p) => (inCorner(p) ? 255 : 0));

const model = ['--weights', weights, '--model', 'small-cnn', '--dataset', 'mnist', '--data-dir', data];
const trigger = ['--trigger-image', triggerPng, '--trigger-mask', maskPng];

test('the ImageFolder and the .npz read as the same images and labels, those written', () => {
  assert.equal(new Set(own.labels).size, 10, 'every class has images');
  const a = userCleanSource(folder, 'mnist'), b = userCleanSource(npz, 'mnist');
  assert.equal(a.path, folder);
  assert.deepEqual(a.set.images.shape, [N, 1, S, S]);
  const expected = tensor(Uint8Array.from(order.flatMap((i) => [...own.images.subarray(i * S * S, (i + 1) * S * S)])), [N, 1, S, S]);
  assert.equal(maxAbsDiff(a.set.images, expected), 0);
  assert.equal(maxAbsDiff(b.set.images, expected), 0);
  assert.deepEqual(a.set.labels.toList(), order.map((i) => own.labels[i]));
  assert.deepEqual(b.set.labels.toList(), a.set.labels.toList());
});

test('a test folder read in chunks evaluates and digests as the folder read whole, random patch placements included', () => {
  const whole = userCleanSource(folder, 'mnist').set, chunks = imageFolderChunks(folder, { channels: 1, size: S, classes: 10 });
  assert.deepEqual(chunks.shape, [N, 1, S, S]);
  assert.deepEqual(Array.from(chunks.labels), whole.labels.toList());
  const m = loadModel({ model: 'small-cnn', dataset: 'mnist', weights });
  const random: AttackSpec = { ...cfg.attack!, trigger: { ...patch, position: 'random' } };
  for (const attack of [random, cfg.attack!]) {
    // one image a forward on both sides, so that both run the same kernels on every image
    const a = evaluateModel(m, whole, datasetInfo('mnist'), attack, 1);
    const b = evaluateModel(m, chunks, datasetInfo('mnist'), attack, 1, 7);
    assert.deepEqual(b, a, `${attack.trigger.kind === 'patch' && attack.trigger.position}: the same metrics from 18 chunks of 7`);
    assert.ok(a.asr! > 0 && a.acc > 0, 'a model that answers');
  }
  assert.equal(setDigest(chunks, 7), setDigest(whole), 'the digest of the images, however they are read');
  m.dispose();
});

test('--clean with --clean-size: a seeded class-stratified draw of the folder or the .npz, only the drawn files decoded', () => {
  const all = userCleanSource(folder, 'mnist');
  const labels = all.set.labels.toList() as number[];
  const idx = stratifiedDraw(labels, 10, 30, 2);
  const a = userCleanSource(folder, 'mnist', undefined, undefined, { size: 30, seed: 2 }), b = userCleanSource(npz, 'mnist', undefined, undefined, { size: 30, seed: 2 });
  assert.deepEqual(a.draw, { size: 30, seed: 2 });
  assert.deepEqual(a.set.labels.toList(), Array.from(idx, (i) => labels[i]));
  const t = tensor(idx, [idx.length]).long();
  assert.equal(maxAbsDiff(a.set.images, all.set.images.indexSelect(0, t)), 0, 'the drawn images, as a full read has them');
  assert.equal(maxAbsDiff(b.set.images, a.set.images), 0, 'the .npz draws the same images');
  assert.ok(maxAbsDiff(userCleanSource(folder, 'mnist', undefined, undefined, { size: 30, seed: 3 }).set.images, a.set.images) > 0, 'another seed, other images');
  // a broken file outside the draw is never read: what a draw costs follows its size, not the folder's
  const broken = path.join(root, 'clean-broken');
  fs.cpSync(folder, broken, { recursive: true });
  const undrawn = labels.findIndex((_, i) => !idx.includes(i));
  const files = fs.readdirSync(broken).sort().flatMap((c) => fs.readdirSync(path.join(broken, c)).sort().map((f) => path.join(broken, c, f)));
  fs.writeFileSync(files[undrawn], 'not a png');
  assert.deepEqual(userCleanSource(broken, 'mnist', undefined, undefined, { size: 30, seed: 2 }).set.labels.toList(), a.set.labels.toList());
  assert.throws(() => userCleanSource(broken, 'mnist'), new RegExp(files[undrawn].replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
});

test('the trigger image with its mask stamps exactly the pixels of the built-in white 3x3 patch', () => {
  const attack = imageTriggerAttack({ image: triggerPng, mask: maskPng, target: 0 }, 'mnist');
  assert.equal(attack.trigger.kind, 'image');
  const test = loadImageSet('mnist', 'test', data);
  const byImage = applyTrigger(test.images, attack.trigger, new Rng(1));
  assert.equal(maxAbsDiff(byImage, applyTrigger(test.images, patch, new Rng(1))), 0);
  // the comparison can fail: the patch one pixel in, or the trigger without its mask, differ
  assert.ok(maxAbsDiff(byImage, applyTrigger(test.images, { ...patch, offset: [1, 1] }, new Rng(1))) > 100);
  const unmasked = imageTriggerAttack({ image: triggerPng, target: 0 }, 'mnist');
  assert.ok(maxAbsDiff(applyTrigger(test.images, unmasked.trigger, new Rng(1)), byImage) > 100);
});

const flags: DefendFlags = { method: 'ft', set: [], valFraction: 0.1, force: false, json: false, width: 64, attack: 'none', triggerSize: 3,
  pattern: 'white', position: 'fixed', offset: '0,0', alpha: 0.2, poisonRatio: 0.05, target: 0, allToAll: false, attackSeed: 1 };
const typed = (...keys: string[]) => (k: string): boolean => keys.includes(k);

test('defend flags: --clean is the user\'s images with the --clean-seed hold-out; --trigger-image the trigger; clashes name both flags', () => {
  const base = { ...flags, weights, model: 'small-cnn' as const, dataset: 'mnist' as const, out: 'o' };
  const r = defendRequest({ ...base, clean: folder, cleanSeed: 7, triggerImage: triggerPng, triggerMask: maskPng }, typed('clean', 'cleanSeed', 'triggerImage', 'triggerMask'));
  assert.ok('model' in r && r.clean.kind === 'images');
  assert.equal(r.clean.path, folder);
  assert.equal(r.clean.set.labels.numel, N);
  assert.equal(r.holdOutSeed, 7);
  assert.equal(r.attack?.trigger.kind, 'image');
  assert.equal(r.attack?.trigger.kind === 'image' && r.attack.trigger.alpha, 1, '--alpha not typed: the image replaces the pixels');
  const half = defendRequest({ ...base, clean: npz, triggerImage: triggerPng, alpha: 0.5 }, typed('clean', 'triggerImage', 'alpha'));
  assert.equal('model' in half && half.attack?.trigger.kind === 'image' && half.attack.trigger.alpha, 0.5);
  const drawn = defendRequest({ ...base, clean: folder, cleanSize: 20, cleanSeed: 3 }, typed('clean', 'cleanSize', 'cleanSeed'));
  assert.ok('model' in drawn && drawn.clean.kind === 'images' && drawn.clean.set.labels.numel === 20 && drawn.clean.draw?.seed === 3, '--clean-size draws from --clean, seeded by --clean-seed');
  assert.throws(() => defendRequest({ ...base, cleanSize: 10, attack: 'patch', triggerImage: triggerPng }, typed('attack', 'triggerImage')), /--attack patch and --trigger-image both describe the trigger/);
  assert.throws(() => defendRequest({ ...base, cleanSize: 10, triggerImage: triggerPng }, typed('triggerImage', 'triggerSize')), /^Error: --trigger-size: describes a built-in trigger/);
  assert.throws(() => defendRequest({ ...base, cleanSize: 10, triggerMask: maskPng }, typed('triggerMask')), /--trigger-mask: give the trigger itself with --trigger-image/);
  assert.throws(() => defendRequest({ ...base, cleanSize: 10, triggerImage: triggerPng, target: 10 }, typed('triggerImage', 'target')), /--target: must be a class of mnist, 0\.\.9, got 10/);
  assert.throws(() => defendRequest({ ...flags, run: 'r', clean: folder }, typed('clean')), /^Error: --clean: the model, its data and attack come from --run r/);
  assert.throws(() => defendRequest({ ...base, cleanSize: 10, triggerImage: path.join(root, 'absent.png') }, typed('triggerImage')), /^Error: --trigger-image: cannot read .*absent\.png/);
  assert.throws(() => defendRequest({ ...base, cleanSize: 10, triggerImage: triggerPng, triggerMask: path.join(root, 'absent.png') }, typed('triggerImage', 'triggerMask')),
    /^Error: --trigger-mask: cannot read .*absent\.png/);
  assert.throws(() => defendRequest({ ...base, cleanSize: 10, triggerImage: triggerPng, alpha: 0 }, typed('triggerImage', 'alpha')), /^Error: --alpha: the trigger image's opacity must be in \(0, 1\], got 0/);
  const e: EvalFlags = { ...(flags as AttackFlags), attack: 'patch', weights, model: 'small-cnn', dataset: 'mnist', width: 64, json: false, clean: npz, triggerImage: triggerPng };
  const t = evalTarget(e, typed('clean', 'triggerImage'));
  assert.equal(t.images && !isChunks(t.images.set) && t.images.set.labels.numel, N, 'a .npz is read whole');
  assert.equal(t.attack?.trigger.kind, 'image', 'eval\'s default --attack patch gives way to a typed --trigger-image');
  assert.throws(() => evalTarget({ ...e, run: 'r' }, typed('clean')), /^Error: --clean: --run r evaluates the run's model/);
});

interface Report {
  before: { acc: number; asr: number; testImages: number }; after: { acc: number; asr: number }; inputDigest: string;
  source: { clean: { kind: string; size: number; path: string; sha256: string }; target: { attack: { trigger: { kind: string; source: string } } } };
}
const reportOf = (dir: string): Report => JSON.parse(fs.readFileSync(path.join(dir, 'ft', 'report.json'), 'utf8')) as Report;

test('defend --clean <folder> --trigger-image --trigger-mask: before/after ACC and ASR, the ASR of the equivalent patch attack; reuse keyed on content', () => {
  const out = path.join(root, 'defended');
  const args = ['defend', ...model, '--method', 'ft', '--set', 'epochs=1', '--set', 'batchSize=32', '--out', out, '--json', '--no-verdict'];
  const rows = JSON.parse(ok(...args, '--clean', folder, ...trigger).stdout) as { method: string; before: Report['before']; after: Report['after'] }[];
  assert.deepEqual(rows.map((r) => r.method), ['ft']);
  const rep = reportOf(out);
  assert.deepEqual(rows[0].after, rep.after);
  for (const v of [rep.before.acc, rep.before.asr, rep.after.acc, rep.after.asr]) assert.ok(v >= 0 && v <= 1, `a rate: ${v}`);
  assert.equal(rep.before.testImages, 200, 'before/after on the dataset\'s test split');
  assert.equal(rep.source.clean.kind, 'images');
  assert.equal(rep.source.clean.path, folder);
  assert.equal(rep.source.clean.size, N);
  assert.match(rep.source.clean.sha256, /^[0-9a-f]{64}$/);
  assert.equal(rep.source.target.attack.trigger.kind, 'image');
  assert.equal(rep.source.target.attack.trigger.source, `${triggerPng} (mask ${maskPng})`);

  // the same model measured with the built-in patch: the triggered images are identical, so is the ASR
  const patched = JSON.parse(ok('eval', ...model, '--attack', 'patch', '--trigger-size', '3', '--json').stdout) as { acc: number; asr: number };
  process.stderr.write(`undefended: ACC ${patched.acc}, patch ASR ${patched.asr}; defend: ASR ${rep.before.asr} -> ${rep.after.asr}\n`);
  assert.ok(patched.asr > 0.2, `the backdoor took (ASR ${patched.asr}), so equal ASRs say something`);
  assert.equal(rep.before.asr, patched.asr);
  assert.equal(rep.before.acc, patched.acc);
  const byImage = JSON.parse(ok('eval', ...model, ...trigger, '--json').stdout) as { asr: number };
  assert.equal(byImage.asr, patched.asr);

  // the .npz holds the same pixels and labels, the trigger files moved elsewhere hold the same pixels: same digest, reused
  const moved = [path.join(root, 'moved-t.png'), path.join(root, 'moved-m.png')];
  fs.copyFileSync(triggerPng, moved[0]);
  fs.copyFileSync(maskPng, moved[1]);
  const again = ok(...args, '--clean', npz, '--trigger-image', moved[0], '--trigger-mask', moved[1]);
  assert.match(again.stderr, /ft: done earlier/);
  assert.equal(reportOf(out).inputDigest, rep.inputDigest);
  // one pixel of one clean image changed: another digest, run again
  const changed = path.join(root, 'changed.npz');
  const x = Uint8Array.from(order.flatMap((i) => [...own.images.subarray(i * S * S, (i + 1) * S * S)]));
  x[5] ^= 1;
  writeNpz(changed, x, [N, S, S], order.map((i) => own.labels[i]));
  const rerun = ok(...args, '--clean', changed, ...trigger);
  assert.match(rerun.stderr, /computed from other weights, data or options; running it again/);
  const changedRep = reportOf(out);
  assert.notEqual(changedRep.source.clean.sha256, rep.source.clean.sha256);
  assert.notEqual(changedRep.inputDigest, rep.inputDigest);
  // another trigger (half opacity), same images: another digest too
  const other = ok(...args, '--clean', changed, ...trigger, '--alpha', '0.5');
  assert.match(other.stderr, /running it again/);
  assert.notEqual(reportOf(out).inputDigest, changedRep.inputDigest);
});

test('eval --clean: the metrics on the user\'s images', () => {
  const m = JSON.parse(ok('eval', ...model, '--clean', folder, ...trigger, '--json').stdout) as { images: string; testImages: number; acc: number; asr: number };
  assert.equal(m.images, folder);
  assert.equal(m.testImages, N);
  assert.ok(m.acc >= 0 && m.acc <= 1 && m.asr >= 0 && m.asr <= 1);
});

test('defend --test: before/after on the user\'s labelled images, as eval --test measures them; recorded and digested', () => {
  const out = path.join(root, 'own-test');
  const args = ['defend', ...model, '--method', 'ft', '--set', 'epochs=1', '--set', 'batchSize=32', '--clean-size', '200', '--out', out, ...trigger, '--json', '--no-verdict'];
  ok(...args, '--test', npz);
  const rep = reportOf(out) as Report & { source: { test: { kind: string; size: number; path: string; sha256: string } } };
  assert.equal(rep.before.testImages, N, 'measured on the npz, not the 200-image test split');
  assert.deepEqual([rep.source.test.path, rep.source.test.size], [npz, N]);
  const own = JSON.parse(ok('eval', ...model, '--test', npz, ...trigger, '--json').stdout) as { acc: number; asr: number; testImages: number };
  assert.deepEqual([rep.before.acc, rep.before.asr, rep.before.testImages], [own.acc, own.asr, own.testImages]);
  // the folder holds the same images: reused; the test split instead: another digest
  assert.match(ok(...args, '--test', folder).stderr, /ft: done earlier/);
  assert.match(ok(...args).stderr, /running it again/);
  assert.equal(reportOf(out).before.testImages, 200);
  assert.throws(() => defendRequest({ ...flags, run: 'r', test: npz }, typed('test')), /^Error: --test: the model, its data and attack come from --run r/);
  const e: EvalFlags = { ...(flags as AttackFlags), attack: 'patch', weights, model: 'small-cnn', dataset: 'mnist', width: 64, json: false };
  assert.throws(() => evalTarget({ ...e, test: npz, clean: npz }, typed('test', 'clean')), /--test and --clean both give eval's images/);
});

/** np.savez(file, x=..., y=..., [y_true=...]) of triggered images, stored. */
function writeTriggeredNpz(file: string, x: Uint8Array, n: number, y: number[], yTrue?: number[]): void {
  const labels = (v: number[]): Buffer => Buffer.from(BigInt64Array.from(v, BigInt).buffer);
  fs.writeFileSync(file, storedZip([['x.npy', npy('|u1', [n, S, S], Buffer.from(x))], ['y.npy', npy('<i8', [n], labels(y))],
    ...(yTrue ? [['y_true.npy', npy('<i8', [n], labels(yTrue))] as [string, Buffer]] : [])]));
}

test('--asr-images: ASR, RA and the floor on triggered images given as they are, as the built-in trigger measures them', () => {
  // the non-target test images, stamped with the built-in patch: what eval --attack patch classifies
  const testSet = loadImageSet('mnist', 'test', data);
  const y = testSet.labels.toList(), keep = y.flatMap((v, i) => (v !== 0 ? [i] : []));
  const stamped = applyTrigger(testSet.images, patch, new Rng(1));
  const pixels = stamped.toArray() as Uint8Array, n = keep.length;
  const x = Uint8Array.from(keep.flatMap((i) => [...pixels.subarray(i * S * S, (i + 1) * S * S)]));
  const withTrue = path.join(root, 'asr.npz'), targetsOnly = path.join(root, 'asr-targets.npz');
  writeTriggeredNpz(withTrue, x, n, new Array<number>(n).fill(0), keep.map((i) => y[i]));
  writeTriggeredNpz(targetsOnly, x, n, new Array<number>(n).fill(0));
  type M = { asr: number; ra: number | null; cleanToTarget: number | null; asrImages?: string };
  const patched = JSON.parse(ok('eval', ...model, '--attack', 'patch', '--trigger-size', '3', '--json').stdout) as M;
  const given = JSON.parse(ok('eval', ...model, '--asr-images', withTrue, '--json').stdout) as M;
  assert.ok(patched.asr > 0.2 && patched.asr < 0.95, `a partial backdoor (ASR ${patched.asr}), so that equal ASRs say something`);
  // the same images classified by the same model: equal up to one image in either path's batches
  for (const k of ['asr', 'ra', 'cleanToTarget'] as const) assert.ok(Math.abs(given[k]! - patched[k]!) <= 1 / n, `${k}: ${given[k]} vs ${patched[k]}`);
  assert.equal(given.asrImages, withTrue);
  // without y_true: no RA; the floor from the single target
  const bare = JSON.parse(ok('eval', ...model, '--asr-images', targetsOnly, '--json').stdout) as M;
  assert.equal(bare.ra, null);
  assert.ok(Math.abs(bare.asr - patched.asr) <= 1 / n && Math.abs(bare.cleanToTarget! - patched.cleanToTarget!) <= 1 / n);
  // an all-to-all relabelling (y -> y+1): the floor counts clean images sent to their own class's target
  const shifted = path.join(root, 'asr-shift.npz');
  writeTriggeredNpz(shifted, x, n, keep.map((i) => (y[i] + 1) % 10), keep.map((i) => y[i]));
  const all = JSON.parse(ok('eval', ...model, '--asr-images', shifted, '--json').stdout) as M;
  assert.ok(all.cleanToTarget !== null && all.cleanToTarget < 0.5 && all.asr < patched.asr, JSON.stringify(all));
  // defend: before and after on them, recorded by path and content
  const out = path.join(root, 'asr-defend');
  ok('defend', ...model, '--method', 'ft', '--set', 'epochs=1', '--set', 'batchSize=32', '--clean', npz, '--asr-images', withTrue, '--out', out, '--no-verdict');
  const rep = JSON.parse(fs.readFileSync(path.join(out, 'ft', 'report.json'), 'utf8')) as { before: M; after: M; source: { target: { attack: null; asrImages: { path: string; size: number; sha256: string } } } };
  assert.ok(Math.abs(rep.before.asr - patched.asr) <= 1 / n);
  assert.ok(rep.after.asr >= 0 && rep.after.asr <= 1 && rep.after.cleanToTarget !== null);
  assert.deepEqual([rep.source.target.attack, rep.source.target.asrImages.path, rep.source.target.asrImages.size], [null, withTrue, n]);
  assert.match(rep.source.target.asrImages.sha256, /^[0-9a-f]{64}$/);
  // in the report's tables the attack is the images (a judge's rows never pool with another's)
  assert.equal(collectRows([out])[0].attack, `triggered images ${path.basename(root)}/asr.npz ${rep.source.target.asrImages.sha256.slice(0, 8)}`);
  // the same images elsewhere: the same inputs, reused
  const moved = path.join(root, 'asr-moved.npz');
  fs.copyFileSync(withTrue, moved);
  assert.match(ok('defend', ...model, '--method', 'ft', '--set', 'epochs=1', '--set', 'batchSize=32', '--clean', npz, '--asr-images', moved, '--out', out, '--no-verdict').stderr, /ft: done earlier/);
  // refused: with a trigger described by flags too, not a .npz, labels outside the classes; never inside a defense
  assert.match(fails('eval', ...model, '--asr-images', withTrue, '--trigger-image', triggerPng), /^error: --trigger-image: --asr-images gives the triggered images/);
  assert.match(fails('eval', ...model, '--asr-images', withTrue, '--attack', 'blend'), /^error: --attack: --asr-images gives the triggered images/);
  assert.match(fails('defend', ...model, '--method', 'ft', '--clean', npz, '--out', out, '--asr-images', folder), /^error: --asr-images: .*clean: triggered images are read from a \.npz/);
  const bad = path.join(root, 'asr-bad.npz');
  writeTriggeredNpz(bad, x, n, new Array<number>(n).fill(10));
  assert.match(fails('eval', ...model, '--asr-images', bad), new RegExp(`^error: --asr-images: ${bad}: y\\[0\\] = 10 is outside the model's classes 0\\.\\.9`));
  assert.throws(() => withoutTestSet(() => userTriggeredImages(withTrue, 'mnist')), /triggered images .*asr\.npz: refused inside a defense/);
});

test('--resize / --center-crop: image files of another size read as torchvision\'s Resize + CenterCrop would, recorded; refused where they cannot apply', () => {
  // the defender's images at 40x34, one class folder each
  const big = path.join(root, 'big');
  for (let c = 0; c < 10; c++) {
    fs.mkdirSync(path.join(big, String(c)), { recursive: true });
    const png = new PNG({ width: 40, height: 34 });
    for (let i = 0; i < 40 * 34; i++) { const v = (i * (c + 3)) % 256; png.data.set([v, v, v, 255], 4 * i); }
    fs.writeFileSync(path.join(big, String(c), 'a.png'), PNG.sync.write(png, { colorType: 2 }));
  }
  assert.match(fails('eval', ...model, '--clean', big), /a\.png: image is 40x34, expected 28x28 \(or give --resize and --center-crop/);
  const m = JSON.parse(ok('eval', ...model, '--clean', big, '--resize', '28', '--center-crop', '28', '--json').stdout) as { testImages: number; acc: number };
  assert.equal(m.testImages, 10);
  // 34 -> 28 and 40 -> 32: without the crop the image is 32x28, not the model's
  assert.match(fails('eval', ...model, '--clean', big, '--resize', '28'), /a\.png: 40x34 image is 32x28 after --resize 28, the model expects 28x28/);
  assert.match(fails('eval', ...model, '--clean', npz, '--resize', '28'), /clean\.npz: --resize and --center-crop apply to a folder of image files/);
  assert.match(fails('eval', ...model, '--resize', '28'), /^error: --resize: transforms the image files of --test/);
  const out = path.join(root, 'resized');
  ok('defend', ...model, '--method', 'ft', '--set', 'epochs=1', '--clean', big, '--resize', '28', '--center-crop', '28', '--out', out, '--no-verdict');
  const rep = JSON.parse(fs.readFileSync(path.join(out, 'ft', 'report.json'), 'utf8')) as { source: { clean: { transform: object; size: number } } };
  assert.deepEqual([rep.source.clean.transform, rep.source.clean.size], [{ resize: 28, centerCrop: 28 }, 10]);
});

test('the CLI refuses wrong images and a draw larger than --clean: one line naming the flag and the file, nothing written', () => {
  const out = path.join(root, 'never');
  const defend = (...more: string[]): string => fails('defend', ...model, '--method', 'ft', '--out', out, ...more);
  // 16x16 images for a 28x28 model
  const small = path.join(root, 'small');
  for (let c = 0; c < 10; c++) {
    fs.mkdirSync(path.join(small, String(c)), { recursive: true });
    writeGreyPng(path.join(small, String(c), 'a.png'), () => 9, 16);
  }
  assert.match(defend('--clean', small), new RegExp(`^error: --clean: ${path.join(small, '0', 'a.png')}: image is 16x16, expected 28x28`));
  // RGB images in a .npz for a one-channel model
  const rgb = path.join(root, 'rgb.npz');
  writeNpz(rgb, new Uint8Array(2 * S * S * 3), [2, S, S, 3], [0, 1]);
  assert.match(defend('--clean', rgb), new RegExp(`^error: --clean: ${rgb}: x has 3 channels .*the model expects 1`));
  // eleven class folders for ten classes
  const eleven = path.join(root, 'eleven');
  fs.cpSync(folder, eleven, { recursive: true });
  fs.cpSync(path.join(folder, '9'), path.join(eleven, 'extra'), { recursive: true });
  assert.match(defend('--clean', eleven), /^error: --clean: .*eleven: 11 class folders \(0, 1, .*extra\), the model has 10 classes/);
  assert.match(defend('--clean', folder, '--clean-size', '500'), new RegExp(`^error: --clean-size 500: ${folder}: a draw of 500 images, more than its ${N}`));
  assert.match(defend('--clean-size', '10', '--test', rgb), new RegExp(`^error: --test: ${rgb}: x has 3 channels`));
  assert.ok(!fs.existsSync(out), 'nothing written');
});

test('cleanup', () => fs.rmSync(root, { recursive: true }));
