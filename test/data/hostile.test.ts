// Hostile IDX (gzip bombs, lying headers) and CIFAR files: refused quickly, with bounded memory,
// by an Error naming the file and the fault.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { CIFAR_MAX_RECORDS, readCifarBinary } from '../../src/data/cifar';
import { loadImageSet } from '../../src/data/datasets';
import { IDX_MAX_BYTES, readIdx } from '../../src/data/idx';
import { idxBytes, writeSyntheticCifar, writeSyntheticIdx } from '../../src/data/synthetic';
import { tmpDir } from '../helpers';

const header = (dims: number[]): Buffer => idxBytes(dims, new Uint8Array(0));
/** A gzip file that inflates to `header` then `mb` MB of zeros: concatenated members keep building it cheap. */
function gzipBomb(head: Buffer, mb: number): Buffer {
  const zeros = zlib.gzipSync(Buffer.alloc(1 << 20), { level: 9 });
  return Buffer.concat([zlib.gzipSync(head), ...new Array(mb).fill(zeros)]);
}

function refused(file: string, read: () => unknown, re: RegExp, maxGrowthMB = 100): void {
  const rss0 = process.memoryUsage().rss, t0 = Date.now();
  assert.throws(read, (e: Error) => {
    assert.ok(!(e instanceof RangeError) && !(e instanceof TypeError), `${e.constructor.name}: ${e.message}`);
    assert.ok(e.message.includes(file), `error does not name ${file}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
  const ms = Date.now() - t0, mb = (process.memoryUsage().rss - rss0) / 2 ** 20;
  assert.ok(ms < 10000, `${re}: took ${ms} ms`); // ~1 s alone; a blow-up takes minutes
  assert.ok(mb < maxGrowthMB, `${re}: RSS grew by ${mb.toFixed(0)} MB`);
}

test('gzipped IDX files inflate no further than their header declares', () => {
  const dir = tmpDir('idxbomb');
  const f = path.join(dir, 'train-images-idx3-ubyte.gz');
  // 1,000 MB of zeros behind a header declaring 60000x28x28 (47 MB)
  const bomb = gzipBomb(header([60000, 28, 28]), 1000);
  assert.ok(bomb.length < 2 << 20, `bomb is ${bomb.length} bytes`);
  fs.writeFileSync(f, bomb);
  refused(f, () => readIdx(f), /decompresses to more than the 47040016 bytes its IDX header declares/);
  // a header declaring more than any dataset here holds is refused before inflating anything
  fs.writeFileSync(f, gzipBomb(header([3000000, 28, 28]), 4));
  refused(f, () => readIdx(f), new RegExp(`declares 2352000000 bytes of data .*more than the ${IDX_MAX_BYTES}-byte limit`), 10);
  // short data, trailing garbage after the gzip member, a truncated stream
  fs.writeFileSync(f, zlib.gzipSync(idxBytes([4, 2, 2], new Uint8Array(16)).subarray(0, 20)));
  refused(f, () => readIdx(f), /truncated: header promises 16 bytes of data \(dims 4x2x2\), file has 4/);
  const ok = zlib.gzipSync(idxBytes([4, 2, 2], new Uint8Array(16)));
  fs.writeFileSync(f, Buffer.concat([ok, Buffer.from('trailing garbage')]));
  refused(f, () => readIdx(f), /corrupt gzip data/);
  fs.writeFileSync(f, ok.subarray(0, ok.length - 6));
  refused(f, () => readIdx(f), /corrupt gzip data/);
  fs.writeFileSync(f, zlib.gzipSync(Buffer.concat([idxBytes([4, 2, 2], new Uint8Array(16)), Buffer.alloc(3)])));
  refused(f, () => readIdx(f), /more than the 32 bytes its IDX header declares/);
  fs.writeFileSync(f, ok);
  assert.deepEqual(readIdx(f).dims, [4, 2, 2], 'the exact file still reads');
  fs.rmSync(dir, { recursive: true });
});

test('dataset shapes and counts are checked from the headers, before the data is inflated', () => {
  const root = tmpDir('idxds');
  writeSyntheticIdx(path.join(root, 'mnist'), { train: 20, test: 10, gzip: true });
  const lbl = path.join(root, 'mnist', 'train-labels-idx1-ubyte.gz');
  fs.writeFileSync(lbl, gzipBomb(header([1 << 28]), 300));
  refused(lbl, () => loadImageSet('mnist', 'train', root), /IDX dims 268435456, expected 20 \(one label per image of .*train-images-idx3-ubyte\.gz\)/, 50);
  const img = path.join(root, 'mnist', 'train-images-idx3-ubyte.gz');
  fs.writeFileSync(img, gzipBomb(header([20, 32, 32]), 300));
  refused(img, () => loadImageSet('mnist', 'train', root), /IDX dims 20x32x32, expected Nx28x28/, 50);
  fs.rmSync(root, { recursive: true });
});

test('CIFAR files: odd sizes, bad labels and oversized files are refused by name, before reading', () => {
  const dir = tmpDir('cifarbad');
  writeSyntheticCifar(path.join(dir, 'cifar10'), 'cifar10', { train: 10, test: 4 });
  const f = path.join(dir, 'cifar10', 'test_batch.bin');
  const good = fs.readFileSync(f);
  fs.writeFileSync(f, Buffer.concat([good, Buffer.alloc(1)]));
  refused(f, () => loadImageSet('cifar10', 'test', dir), /12293 bytes is not a whole number of 3073-byte cifar10 records/);
  const bad = Buffer.from(good);
  bad[3 * 3073] = 255;
  fs.writeFileSync(f, bad);
  refused(f, () => loadImageSet('cifar10', 'test', dir), /record 3 has label 255, outside 0\.\.9/);
  const c100 = path.join(dir, 'c100.bin');
  const rec = Buffer.alloc(2 * 3074);
  rec[3074] = 20; // the second record's coarse label (fine 0 is fine)
  fs.writeFileSync(c100, rec);
  refused(c100, () => readCifarBinary([c100], 'cifar100'), /record 1 has coarse label 20, outside 0\.\.19/);
  rec[3074] = 0; rec[3075] = 100;
  fs.writeFileSync(c100, rec);
  refused(c100, () => readCifarBinary([c100], 'cifar100', false), /record 1 has fine label 100, outside 0\.\.99/);
  // a sparse file of 60,001 records (184 MB that are never read)
  fs.writeFileSync(f, '');
  fs.truncateSync(f, (CIFAR_MAX_RECORDS + 1) * 3073);
  refused(f, () => loadImageSet('cifar10', 'test', dir), /60001 records, more than a cifar10 split holds/, 20);
  // five files under the per-file bound that together exceed a split
  const many = Array.from({ length: 5 }, (_, i) => path.join(dir, `b${i}.bin`));
  for (const m of many) { fs.writeFileSync(m, ''); fs.truncateSync(m, 20000 * 3074); }
  refused(many[0], () => readCifarBinary(many, 'cifar100'), /100000 records in all, more than a cifar100 split holds/, 20);
  fs.rmSync(dir, { recursive: true });
});
