// Hostile .npz files at the default limit (issue 26): deflate bombs behind honest headers, bombs behind
// headers that fit the limit but not the model, nested zips and ZIP64 sizes. Each is read in a child
// process whose peak RSS is measured: refused with the file named, in bounded memory and time.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { repoRoot, tmpDir } from '../helpers';
import { npy } from '../hostile-files';


/**
 * A raw deflate stream of `head` then `zeros` zero bytes, built without inflating anything: each 1 MiB of
 * zeros is one independently compressed, byte-aligned (sync-flushed) segment, repeated; an empty final
 * block closes the stream. About 1 KiB of file per MiB of zeros.
 */
function zeroBomb(head: Buffer, zeros: number): Buffer {
  const flush = { finishFlush: zlib.constants.Z_SYNC_FLUSH, level: 9 };
  const mib = 1 << 20, full = Math.floor(zeros / mib), rest = zeros % mib;
  const seg = zlib.deflateRawSync(Buffer.alloc(mib), flush);
  const parts = [zlib.deflateRawSync(head, flush), ...new Array<Buffer>(full).fill(seg)];
  if (rest) parts.push(zlib.deflateRawSync(Buffer.alloc(rest), flush));
  parts.push(zlib.deflateRawSync(Buffer.alloc(0)));
  return Buffer.concat(parts);
}

interface Entry { name: string; data: Buffer; size: number; method: 0 | 8; zip64?: boolean }

/** A zip of the given (already compressed) entries, declaring `size` each; zip64 puts the sizes in the extra field. */
function zip(entries: Entry[]): Buffer {
  const locals: Buffer[] = [], centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const n = Buffer.from(e.name);
    const extra = Buffer.alloc(e.zip64 ? 20 : 0);
    if (e.zip64) { extra.writeUInt16LE(1, 0); extra.writeUInt16LE(16, 2); extra.writeBigUInt64LE(BigInt(e.size), 4); extra.writeBigUInt64LE(BigInt(e.data.length), 12); }
    const size = e.zip64 ? 0xffffffff : e.size, csize = e.zip64 ? 0xffffffff : e.data.length;
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(e.method, 8);
    lh.writeUInt32LE(csize, 18); lh.writeUInt32LE(size, 22); lh.writeUInt16LE(n.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(e.method, 10);
    ch.writeUInt32LE(csize, 20); ch.writeUInt32LE(size, 24); ch.writeUInt16LE(n.length, 28); ch.writeUInt16LE(extra.length, 30); ch.writeUInt32LE(offset, 42);
    locals.push(lh, n, e.data);
    centrals.push(ch, n, extra);
    offset += 30 + n.length + e.data.length;
  }
  const cd = Buffer.concat(centrals), end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** An honest deflated .npy entry: its header, then zeros for all the data it declares. */
function honest(name: string, descr: string, shape: number[], itemSize: number): Entry {
  const head = npy(descr, shape), bytes = shape.reduce((a, d) => a * d, 1) * itemSize;
  return { name, data: zeroBomb(head, bytes), size: head.length + bytes, method: 8 };
}

const labels = (n: number): Entry => {
  const raw = Buffer.concat([npy('<i8', [n]), Buffer.alloc(8 * n)]);
  return { name: 'y.npy', data: zlib.deflateRawSync(raw), size: raw.length, method: 8 };
};

/** Reads `file` as Fashion-MNIST-shaped clean images in a child process: its error, peak RSS (MB) and time. */
function readInChild(file: string): { error: string | null; maxRssMb: number; ms: number } {
  const script = `
    const { readUserImages } = require(${JSON.stringify(path.join(repoRoot, 'dist', 'src', 'data', 'user-images.js'))});
    const t0 = Date.now(); let error = null;
    try { readUserImages(${JSON.stringify(file)}, { channels: 1, size: 28, classes: 10 }); } catch (e) { error = e.message; }
    process.stdout.write(JSON.stringify({ error, maxRssMb: process.resourceUsage().maxRSS / 1024, ms: Date.now() - t0 }));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 }));
}

test('deflate bombs, nested zips and ZIP64 sizes in an .npz are refused, naming the file, in bounded memory and time', (t) => {
  const dir = tmpDir('npz-bombs');
  const baseline = readInChild(path.join(dir, 'missing.npz'));
  const inner = zip([honest('x.npy', '|u1', [2_000_000, 28, 28], 1)]);
  assert.match(baseline.error ?? '', /missing\.npz/);
  const cases: [string, Buffer, RegExp][] = [
    // issue 26's file: 1.57 GB of zeros in 1.5 MB, behind a header that declares them honestly
    ['honest-bomb', zip([honest('x.npy', '|u1', [2_000_000, 28, 28], 1), labels(10)]), /x: \.npy shape \(2000000, 28, 28\) x \|u1 declares 1568000000 bytes, more than the 268435456-byte limit/],
    // as many bytes in another shape, and a bomb in y behind a small x
    ['flat-bomb', zip([honest('x.npy', '|u1', [1_500_000_000], 1), labels(10)]), /x: \.npy shape \(1500000000\) x \|u1 declares 1500000000 bytes/],
    ['label-bomb', zip([honest('x.npy', '|u1', [2, 28, 28], 1), honest('y.npy', '<i8', [200_000_000], 8)]), /y: \.npy shape \(200000000\) x <i8 declares 1600000000 bytes|y has shape \(200000000\), expected \(2,\)/],
    // 235 MB that fit the limit but not the model (32x32 images for a 28x28 model): refused before inflating
    ['wrong-size-bomb', zip([honest('x.npy', '|u1', [230_000, 32, 32], 1), labels(10)]), /x images are 32x32 .* the model expects 28x28/],
    // the right shape, but the header declares more than the zip entry does (or the reverse)
    ['entry-mismatch', zip([{ ...honest('x.npy', '|u1', [200_000, 28, 28], 1), size: 1000 }, labels(10)]), /x: .* needs 156800000 bytes of data, the array holds \d+/],
    // a zip where the array should be, itself holding the bomb
    ['nested-zip', zip([{ name: 'x.npy', data: zlib.deflateRawSync(inner), size: inner.length, method: 8 }, labels(10)]), /x: not a \.npy array \(bad magic\)/],
    // ZIP64 extra fields declaring a 2^40-byte entry
    ['zip64', zip([{ ...honest('x.npy', '|u1', [2_000_000, 28, 28], 1), size: 2 ** 40, zip64: true }, labels(10)]), /zip64 size of 'x\.npy' 1099511627776 exceeds the \d+-byte file|declares 1099511627776 bytes uncompressed/],
  ];
  for (const [name, bytes, re] of cases) {
    const file = path.join(dir, `${name}.npz`);
    fs.writeFileSync(file, bytes);
    assert.ok(fs.statSync(file).size < 4 << 20, `${name}: a small file (${fs.statSync(file).size} bytes)`);
    const r = readInChild(file);
    assert.ok(r.error !== null, `${name}: refused`);
    assert.ok(r.error.includes(file), `${name}: the error names the file: ${r.error}`);
    assert.match(r.error, re, name);
    // the bound is 1.5 GB; the reader itself adds little to a bare process (inflating the bombs: 1.5 GB or more)
    assert.ok(r.maxRssMb < baseline.maxRssMb + 400, `${name}: peak RSS ${r.maxRssMb.toFixed(0)} MB (a bare read: ${baseline.maxRssMb.toFixed(0)} MB)`);
    assert.ok(r.ms < 20_000, `${name}: ${r.ms} ms`);
    t.diagnostic(`${name}: ${(bytes.length / 2 ** 20).toFixed(1)} MiB file, refused in ${r.ms} ms at ${r.maxRssMb.toFixed(0)} MB peak RSS (bare read ${baseline.maxRssMb.toFixed(0)} MB)`);
  }
  fs.rmSync(dir, { recursive: true });
});
