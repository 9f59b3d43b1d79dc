// The defender's own images: an ImageFolder tree and .npz files written by PIL/numpy (python3-pil,
// python3-numpy), read as torchvision's ImageFolder with PIL's convert makes them; then wrong and
// hostile inputs, refused naming the file and the field, before anything large is allocated.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import * as jpeg from 'jpeg-js';
import * as T from '../../src/torch';
import { codePointCompare, readImageFolder, readNpzImages, readUserImages } from '../../src/data/user-images';
import { maxAbsDiff, python, tmpDir } from '../helpers';
import { fuzz, fuzzIterations, npy } from '../hostile-files';

const ref = (() => {
  const dir = tmpDir('userimg');
  python('images_ref.py', dir);
  return { dir, t: T.loadSafetensors(path.join(dir, 'ref.safetensors')).tensors };
})();
const r = (k: string): T.Tensor => { const t = ref.t.get(k); assert.ok(t, `reference lacks ${k}`); return t; };

test('an ImageFolder of PNGs reads as torchvision + PIL: class order, file order, L and RGB conversions, exactly', () => {
  for (const mode of ['L', 'RGB'] as const) {
    const set = readImageFolder(path.join(ref.dir, 'png'), { channels: mode === 'L' ? 1 : 3, size: 8, classes: 6 });
    assert.deepEqual(set.images.shape, r(`png.${mode}.x`).shape);
    // grey, RGB, RGBA, LA and palette PNGs, '.PNG' as well as '.png', a nested folder; notes.txt skipped
    assert.equal(set.images.shape[0], 24);
    assert.equal(maxAbsDiff(set.images, r(`png.${mode}.x`)), 0, `${mode} pixels`);
    assert.deepEqual(set.labels.toList(), r(`png.${mode}.y`).toList(), `${mode} labels`);
    assert.equal(set.classes, 6);
  }
  // the L conversion is not a plain average: an RGB image's grey levels differ from (R + G + B) / 3
  const rgb = readImageFolder(path.join(ref.dir, 'png'), { channels: 3, size: 8, classes: 6 }).images.to('float64');
  const avg = rgb.sum([1], true).div(3).round();
  assert.ok(maxAbsDiff(avg, r('png.L.x').to('float64')) > 20);
});

test('class folders sort by code point, as Python\'s sorted(): U+FF21 before U+1F600 (a UTF-16 sort says otherwise)', () => {
  const names = ['\u{1F600}', '\uff21', 'b', 'B', 'a2', 'a10'];
  assert.deepEqual([...names].sort(codePointCompare), ['B', 'a10', 'a2', 'b', '\uff21', '\u{1F600}']);
  assert.deepEqual([...names].sort().slice(4), ['\u{1F600}', '\uff21'], 'JavaScript\'s default sort differs here');
});

test('JPEGs decode within a few levels of PIL (libjpeg) and keep torchvision\'s labels', () => {
  for (const mode of ['L', 'RGB'] as const) {
    const set = readImageFolder(path.join(ref.dir, 'jpeg'), { channels: mode === 'L' ? 1 : 3, size: 16, classes: 2 });
    assert.deepEqual(set.labels.toList(), r(`jpeg.${mode}.y`).toList());
    const d = maxAbsDiff(set.images, r(`jpeg.${mode}.x`));
    const mean = set.images.to('float64').sub(r(`jpeg.${mode}.x`).to('float64')).abs().mean().item();
    process.stderr.write(`jpeg ${mode}: max |jpeg-js - PIL| ${d}, mean ${mean.toFixed(3)}\n`);
    assert.ok(d <= 16 && mean < 2.5, `${mode}: max ${d}, mean ${mean}`); // measured: L 1 / 0.33, RGB 8 / 1.28
  }
});

test('.npz files from np.savez and np.savez_compressed: channels-last to [N, C, H, W], int64/int32/uint8 labels', () => {
  const rgb = readUserImages(path.join(ref.dir, 'rgb.npz'), { channels: 3, size: 8, classes: 10 });
  assert.equal(maxAbsDiff(rgb.images, r('npz.rgb.x')), 0);
  assert.deepEqual(rgb.labels.toList(), r('npz.rgb.y').toList());
  for (const f of ['gray.npz', 'u8labels.npz']) {
    const g = readNpzImages(path.join(ref.dir, f), { channels: 1, size: 8, classes: 4 });
    assert.equal(maxAbsDiff(g.images, r('npz.gray.x')), 0, f);
    assert.deepEqual(g.labels.toList(), r('npz.gray.y').toList(), f);
  }
});

function throwsNaming(fn: () => unknown, names: string, re: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(!(e instanceof RangeError) && !(e instanceof TypeError), `${e.constructor.name}: ${e.message}`);
    assert.ok(e.message.includes(names), `error does not name ${names}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test('what the model does not expect is refused, naming the file and the field', () => {
  const png = path.join(ref.dir, 'png');
  throwsNaming(() => readImageFolder(png, { channels: 1, size: 16, classes: 6 }), path.join(png, 'B', 'gray.PNG'), /image is 8x8, expected 16x16/);
  throwsNaming(() => readImageFolder(png, { channels: 1, size: 8, classes: 10 }), png, /6 class folders \(B, a10, a2, b, .*\), the model has 10 classes/);
  throwsNaming(() => readNpzImages(path.join(ref.dir, 'rgb.npz'), { channels: 3, size: 8, classes: 5 }), 'rgb.npz', /y\[3\] = 9 is outside the model's classes 0\.\.4/);
  throwsNaming(() => readNpzImages(path.join(ref.dir, 'rgb.npz'), { channels: 1, size: 8, classes: 10 }), 'rgb.npz', /x has 3 channels .*the model expects 1/);
  throwsNaming(() => readNpzImages(path.join(ref.dir, 'gray.npz'), { channels: 1, size: 28, classes: 10 }), 'gray.npz', /x images are 8x8 .*expects 28x28/);
  const dir = tmpDir('userimg-bad');
  fs.mkdirSync(path.join(dir, 'cls', 'a'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'cls', 'b'));
  fs.copyFileSync(path.join(png, 'b', 'rgb.png'), path.join(dir, 'cls', 'a', 'x.png'));
  fs.writeFileSync(path.join(dir, 'cls', 'b', 'readme.md'), 'no images here');
  throwsNaming(() => readImageFolder(path.join(dir, 'cls'), { channels: 3, size: 8, classes: 2 }), path.join(dir, 'cls'), /no image files .* for the classes b/);
  fs.writeFileSync(path.join(dir, 'cls', 'b', 'fake.png'), 'this is text, not a PNG');
  throwsNaming(() => readImageFolder(path.join(dir, 'cls'), { channels: 3, size: 8, classes: 2 }), path.join(dir, 'cls', 'b', 'fake.png'), /not a PNG or JPEG/);
  const good = fs.readFileSync(path.join(png, 'b', 'rgb.png'));
  fs.writeFileSync(path.join(dir, 'cls', 'b', 'fake.png'), good.subarray(0, good.length - 20));
  throwsNaming(() => readImageFolder(path.join(dir, 'cls'), { channels: 3, size: 8, classes: 2 }), path.join(dir, 'cls', 'b', 'fake.png'), /truncated|cannot decode PNG/);
  const npz = path.join(dir, 'onlyx.npz');
  fs.writeFileSync(npz, storedZip({ 'x.npy': npy('|u1', [1, 8, 8], Buffer.alloc(64)) }));
  throwsNaming(() => readNpzImages(npz, { channels: 1, size: 8, classes: 2 }), npz, /no array 'y' \(it holds x\)/);
  fs.writeFileSync(npz, storedZip({ 'x.npy': npy('<f4', [1, 8, 8], Buffer.alloc(256)), 'y.npy': npy('<i8', [1], Buffer.alloc(8)) }));
  throwsNaming(() => readNpzImages(npz, { channels: 1, size: 8, classes: 2 }), `${npz}: x`, /dtype '<f4' is not supported/);
  fs.writeFileSync(npz, storedZip({ 'x.npy': npy('|u1', [2, 8, 8], Buffer.alloc(128), true), 'y.npy': npy('<i8', [2], Buffer.alloc(16)) }));
  throwsNaming(() => readNpzImages(npz, { channels: 1, size: 8, classes: 2 }), `${npz}: x`, /'fortran_order' is true/);
  fs.writeFileSync(npz, storedZip({ 'x.npy': npy('|u1', [2, 8, 8], Buffer.alloc(128)), 'y.npy': npy('<i8', [3], Buffer.alloc(24)) }));
  throwsNaming(() => readNpzImages(npz, { channels: 1, size: 8, classes: 2 }), npz, /y has shape \(3\), expected \(2,\)/);
  fs.rmSync(dir, { recursive: true });
});

// --- hand-built files for the hostile cases ---


/** A zip with the given entries; `deflate` compresses them (declaring `declared` sizes when given). */
function storedZip(entries: Record<string, Buffer>, o: { deflate?: boolean; declared?: Record<string, number> } = {}): Buffer {
  const locals: Buffer[] = [], centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, raw] of Object.entries(entries)) {
    const data = o.deflate ? zlib.deflateRawSync(raw) : raw;
    const size = o.declared?.[name] ?? raw.length, n = Buffer.from(name);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(o.deflate ? 8 : 0, 8);
    lh.writeUInt32LE(zlib.crc32(raw), 14); lh.writeUInt32LE(data.length, 18); lh.writeUInt32LE(size, 22); lh.writeUInt16LE(n.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(o.deflate ? 8 : 0, 10);
    ch.writeUInt32LE(zlib.crc32(raw), 16); ch.writeUInt32LE(data.length, 20); ch.writeUInt32LE(size, 24); ch.writeUInt16LE(n.length, 28); ch.writeUInt32LE(offset, 42);
    locals.push(lh, n, data);
    centrals.push(ch, n);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(Object.keys(entries).length, 8); end.writeUInt16LE(Object.keys(entries).length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(td));
  return Buffer.concat([len, td, crc]);
}

function rawPng(width: number, height: number, o: { bitDepth?: number; colorType?: number; interlace?: number; idat: Buffer }): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = o.bitDepth ?? 8; ihdr[9] = o.colorType ?? 0; ihdr[12] = o.interlace ?? 0;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', o.idat), chunk('IEND', Buffer.alloc(0))]);
}

function refusedQuickly(fn: () => unknown, names: string, re: RegExp): void {
  const rss0 = process.memoryUsage().rss, t0 = Date.now();
  throwsNaming(fn, names, re);
  const ms = Date.now() - t0, mb = (process.memoryUsage().rss - rss0) / 2 ** 20;
  assert.ok(ms < 10000, `${re}: took ${ms} ms`); // well under a second alone; a blow-up takes minutes or dies
  assert.ok(mb < 150, `${re}: RSS grew by ${mb.toFixed(0)} MB`);
}

test('hostile images and arrays are refused from their headers, before any large allocation', () => {
  const dir = tmpDir('userimg-hostile');
  const cls = path.join(dir, 'set', 'c');
  fs.mkdirSync(cls, { recursive: true });
  const f = path.join(cls, 'x.png');
  const expect = { channels: 1 as const, size: 8, classes: 1 };
  // a PNG header declaring 100000 x 100000 grey pixels (10 GB decoded) in a few hundred bytes
  fs.writeFileSync(f, rawPng(100000, 100000, { idat: zlib.deflateSync(Buffer.alloc(1000)) }));
  refusedQuickly(() => readImageFolder(path.join(dir, 'set'), expect), f, /image is 100000x100000, expected 8x8/);
  // the right size, interlaced, with IDAT data that inflates to 64 MB (pngjs inflates interlaced data unbounded)
  const bomb = zlib.deflateSync(Buffer.alloc(64 << 20), { level: 9 });
  fs.writeFileSync(f, rawPng(8, 8, { interlace: 1, idat: bomb }));
  refusedQuickly(() => readImageFolder(path.join(dir, 'set'), expect), f, /interlaced PNG data inflates to more than a 8x8 image can hold/);
  // a valid interlaced PNG of the right size still reads (Adam7 pass layout for an 8x8 grey image)
  const pixels = Uint8Array.from({ length: 64 }, (_, i) => (i * 37) % 256);
  const passes = [[0, 0, 8, 8], [0, 4, 8, 8], [4, 0, 8, 4], [0, 2, 4, 4], [2, 0, 4, 2], [0, 1, 2, 2], [1, 0, 2, 1]]; // [y0, x0, dy, dx]
  const rows: number[] = [];
  for (const [y0, x0, dy, dx] of passes) for (let y = y0; y < 8; y += dy) { rows.push(0); for (let x = x0; x < 8; x += dx) rows.push(pixels[y * 8 + x]); }
  fs.writeFileSync(f, rawPng(8, 8, { interlace: 1, idat: zlib.deflateSync(Buffer.from(rows)) }));
  assert.deepEqual([...(readImageFolder(path.join(dir, 'set'), expect).images.toArray() as Uint8Array)], [...pixels], 'interlaced PNG');
  // a JPEG whose frame header declares 60000 x 60000
  const jpg = Buffer.from(jpeg.encode({ width: 8, height: 8, data: Buffer.alloc(8 * 8 * 4, 128) }, 90).data);
  const sof = jpg.indexOf(Buffer.from([0xff, 0xc0]));
  jpg.writeUInt16BE(60000, sof + 5); jpg.writeUInt16BE(60000, sof + 7);
  fs.rmSync(f);
  const fj = path.join(cls, 'x.jpg');
  fs.writeFileSync(fj, jpg);
  refusedQuickly(() => readImageFolder(path.join(dir, 'set'), expect), fj, /image is 60000x60000, expected 8x8/);
  fs.writeFileSync(fj, jpg.subarray(0, sof + 3));
  refusedQuickly(() => readImageFolder(path.join(dir, 'set'), expect), fj, /corrupt JPEG|without a frame header/);
  fs.rmSync(fj);
  // more images than the byte limit allows are counted, not decoded; a link loop is cut at a fixed depth
  const grey = Buffer.from(rawPng(8, 8, { idat: zlib.deflateSync(Buffer.alloc(8 * 9)) }));
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(cls, `${i}.png`), grey);
  assert.equal(readImageFolder(path.join(dir, 'set'), expect).images.shape[0], 5);
  refusedQuickly(() => readImageFolder(path.join(dir, 'set'), expect, { maxBytes: 4 * 64 }), path.join(dir, 'set'),
    /more than 4 images \(counted up to its class folder c\): 4 images of 8x8x1, the limit on clean images held at once; give a draw of them \(--clean-size\)/);
  assert.equal(readImageFolder(path.join(dir, 'set'), expect, { maxBytes: 4 * 64 }, {}, { size: 3, seed: 1 }).images.shape[0], 3, 'a draw under the limit reads');
  fs.symlinkSync('..', path.join(cls, 'loop'));
  refusedQuickly(() => readImageFolder(path.join(dir, 'set'), expect), 'loop', /nested more than 8 deep \(a link loop\?\)/);
  fs.rmSync(path.join(cls, 'loop'));
  for (let i = 0; i < 5; i++) fs.rmSync(path.join(cls, `${i}.png`));
  // 16-bit PNGs are refused rather than converted differently from PIL
  fs.writeFileSync(f, rawPng(8, 8, { bitDepth: 16, idat: zlib.deflateSync(Buffer.alloc(8 * 17)) }));
  refusedQuickly(() => readImageFolder(path.join(dir, 'set'), expect), f, /16-bit PNG is not supported/);

  const npz = path.join(dir, 'x.npz');
  const y1 = npy('<i8', [1], Buffer.alloc(8));
  // shape (2^40, 8, 8) declared in a tiny file
  fs.writeFileSync(npz, storedZip({ 'x.npy': npy('|u1', [2 ** 40, 8, 8], Buffer.alloc(64)), 'y.npy': y1 }));
  refusedQuickly(() => readNpzImages(npz, expect), `${npz}: x`, /declares 70368744177664 bytes, more than the 268435456-byte limit/);
  // a shape that the data does not fill
  fs.writeFileSync(npz, storedZip({ 'x.npy': npy('|u1', [4, 8, 8], Buffer.alloc(64)), 'y.npy': y1 }));
  refusedQuickly(() => readNpzImages(npz, expect), `${npz}: x`, /needs 256 bytes of data, the array holds 64/);
  // a deflated entry that inflates past its declared size (a zip bomb), and one that declares too much
  // (its header honest about one 8x8 image, the entry declaring just that)
  const oneImage = npy('|u1', [1, 8, 8], Buffer.alloc(64 << 20));
  fs.writeFileSync(npz, storedZip({ 'x.npy': oneImage, 'y.npy': y1 }, { deflate: true, declared: { 'x.npy': oneImage.length - (64 << 20) + 64 } }));
  refusedQuickly(() => readNpzImages(npz, expect), npz, /entry 'x.npy' inflates to more than its declared 192 bytes/);
  fs.writeFileSync(npz, storedZip({ 'x.npy': Buffer.alloc(1000), 'y.npy': y1 }, { deflate: true, declared: { 'x.npy': 0xfffffff0 } }));
  refusedQuickly(() => readNpzImages(npz, expect, { maxBytes: 1 << 20 }), npz, /declares 4294967280 bytes uncompressed, more than the \d+-byte limit/);
  // headers that are not numpy's
  for (const [bad, re] of [
    [Buffer.concat([Buffer.from('\x93NUMPY\x01\x00', 'latin1'), Buffer.from([0xff, 0xff])]), /header length 65535|runs past the end/],
    [npy('|u1', [1, 8, 8], Buffer.alloc(64)).fill(0x20, 10, 30), /malformed .npy header/],
    [Buffer.from('\x93NUMPY\x09\x00\x00\x00', 'latin1'), /unsupported .npy version 9/],
  ] as const) {
    fs.writeFileSync(npz, storedZip({ 'x.npy': bad, 'y.npy': y1 }));
    refusedQuickly(() => readNpzImages(npz, expect), `${npz}: x`, re);
  }
  fs.rmSync(dir, { recursive: true });
});

test('fuzz: mutated PNG, JPEG and .npz files read consistently or are refused by an Error naming the file', () => {
  const dir = tmpDir('userimg-fuzz');
  const cls = path.join(dir, 'set', 'c');
  fs.mkdirSync(cls, { recursive: true });
  const folder = (channels: 1 | 3) => (): unknown => readImageFolder(path.join(dir, 'set'), { channels, size: 8, classes: 1 });
  const oneImage = (channels: number) => (res: unknown): void => {
    assert.deepEqual((res as { images: T.Tensor }).images.shape, [1, channels, 8, 8]);
  };
  const results = [
    fuzz(path.join(cls, 'x.png'), fs.readFileSync(path.join(ref.dir, 'png', 'b', 'palette.png')), fuzzIterations(300), folder(3), oneImage(3), fs.writeFileSync),
    fuzz(path.join(cls, 'x.png'), fs.readFileSync(path.join(ref.dir, 'png', 'b', 'nested', 'rgba.png')), fuzzIterations(300), folder(1), oneImage(1), fs.writeFileSync),
  ];
  fs.rmSync(path.join(cls, 'x.png'));
  const jpg = Buffer.from(jpeg.encode({ width: 8, height: 8, data: Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 29) % 256)) }, 80).data);
  results.push(fuzz(path.join(cls, 'x.jpg'), jpg, fuzzIterations(300), folder(3), oneImage(3), fs.writeFileSync));
  const npz = path.join(dir, 'x.npz');
  results.push(fuzz(npz, fs.readFileSync(path.join(ref.dir, 'rgb.npz')), fuzzIterations(300), (f) => readNpzImages(f, { channels: 3, size: 8, classes: 10 }), (res) => {
    const set = res as { images: T.Tensor; labels: T.Tensor };
    assert.equal(set.images.shape[0], set.labels.shape[0]);
    assert.ok((set.labels.toList() as number[]).every((v) => v >= 0 && v < 10));
  }, fs.writeFileSync));
  for (const r of results) assert.ok(r.refused > 0, `some mutants are refused (${r.ok} read, ${r.refused} refused)`);
  fs.rmSync(dir, { recursive: true });
});

test.after(() => fs.rmSync(ref.dir, { recursive: true, force: true }));
