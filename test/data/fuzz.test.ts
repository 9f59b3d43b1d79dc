// Seeded mutation fuzzing of the IDX (raw and gzipped) and CIFAR readers: every mutant either reads
// consistently with its size or is refused by an Error naming the file.
// VARDEFENSE_FUZZ_ITERATIONS / VARDEFENSE_FUZZ_SEED run longer or elsewhere; a failure prints its seed.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { CifarArrays, readCifarBinary } from '../../src/data/cifar';
import { IdxArray, readIdx } from '../../src/data/idx';
import { idxBytes, syntheticImages } from '../../src/data/synthetic';
import { tmpDir } from '../helpers';
import { fuzz, fuzzIterations } from '../hostile-files';

const { images, labels } = syntheticImages(3, 1, 6, 10, 4);
const consistent = (r: IdxArray): void => assert.equal(r.data.length, r.dims.reduce((a, b) => a * b, 1), `dims ${r.dims} vs ${r.data.length} bytes`);

test('fuzz: mutated raw and gzipped IDX files read consistently or are refused by name', () => {
  const dir = tmpDir('fuzzidx');
  const raw = idxBytes([3, 6, 6], images);
  const a = fuzz(path.join(dir, 'x-idx3-ubyte'), raw, fuzzIterations(400), (f) => readIdx(f), (r, bytes) => {
    consistent(r as IdxArray);
    assert.equal(4 + 4 * (r as IdxArray).dims.length + (r as IdxArray).data.length, bytes.length, 'header and data fill the file');
  }, fs.writeFileSync);
  // mutate the compressed bytes, and (separately) the content before compressing
  const b = fuzz(path.join(dir, 'x-idx3-ubyte.gz'), zlib.gzipSync(raw), fuzzIterations(400), (f) => readIdx(f), (r, bytes) => {
    consistent(r as IdxArray);
    assert.ok((r as IdxArray).data.length <= 1100 * bytes.length, 'no more data than deflate can encode in the file');
  }, fs.writeFileSync);
  const c = fuzz(path.join(dir, 'y-idx1-ubyte.gz'), idxBytes([3], labels), fuzzIterations(400), (f) => readIdx(f), (r) => consistent(r as IdxArray),
    (f, bytes) => fs.writeFileSync(f, zlib.gzipSync(bytes)));
  for (const r of [a, b, c]) assert.ok(r.refused > 0 && r.ok > 0, `both outcomes occur (${r.ok} read, ${r.refused} refused)`);
  fs.rmSync(dir, { recursive: true });
});

test('fuzz: mutated CIFAR files read consistently or are refused by name', () => {
  const dir = tmpDir('fuzzcifar');
  const valid = Buffer.concat(Array.from({ length: 3 }, (_, i) => Buffer.concat([Buffer.from([0, 3 * i]), Buffer.alloc(3072, i)])));
  const r = fuzz(path.join(dir, 'test.bin'), valid, fuzzIterations(400), (f) => readCifarBinary([f], 'cifar100'), (res, bytes) => {
    const c = res as CifarArrays;
    assert.equal(c.n * 3074, bytes.length);
    assert.equal(c.images.length, c.n * 3072);
    assert.ok(c.labels.every((l) => l < 100), 'labels in range');
  }, fs.writeFileSync);
  assert.ok(r.refused > 0 && r.ok > 0, `both outcomes occur (${r.ok} read, ${r.refused} refused)`);
  fs.rmSync(dir, { recursive: true });
});
