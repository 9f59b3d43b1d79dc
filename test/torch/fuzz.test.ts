// Seeded mutation fuzzing of the torch.save and safetensors readers: every mutant either loads
// (no more tensor bytes than the file can justify) or is refused by an Error naming the file.
// VARDEFENSE_FUZZ_ITERATIONS / VARDEFENSE_FUZZ_SEED run longer or elsewhere; a failure prints its seed.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as T from '../../src/torch';
import { tmpDir } from '../helpers';
import { fuzz, fuzzIterations, statePickle, torchZip } from '../hostile-files';

/** Distinct tensors anywhere in a loaded value, found without recursion (a pickle's memo can make cycles). */
function tensorsIn(v: unknown): T.Tensor[] {
  const out = new Set<T.Tensor>(), seen = new Set<unknown>(), todo = [v];
  while (todo.length) {
    const x = todo.pop();
    if (x instanceof T.Tensor) out.add(x);
    else if ((Array.isArray(x) || x instanceof Map) && !seen.has(x)) {
      seen.add(x);
      for (const y of x.values()) todo.push(y);
    }
  }
  return [...out];
}

const SIZE: Record<string, number> = { float64: 8, int64: 8, float32: 4, int32: 4, float16: 2, bfloat16: 2, int16: 2 };
const bytesOf = (ts: T.Tensor[]): number => ts.reduce((a, t) => a + t.numel * (SIZE[t.dtype] ?? 1), 0);

test('fuzz: mutated torch.save archives load within bounds or are refused by name', () => {
  const dir = tmpDir('fuzzpt');
  const storage = Buffer.from(new Float32Array([0, 1, 2, 3, 4, 5]).buffer), longs = Buffer.from(new BigInt64Array([7n, -1n]).buffer);
  const pkl = statePickle([
    { key: 'w', storage: '0', numel: 6, offset: 0, size: [2, 3], stride: [3, 1] },
    { key: 'v', storage: '0', numel: 6, offset: 1, size: [2], stride: [3] },
    { key: 'n', storage: '1', dtype: 'LongStorage', numel: 2, offset: 0, size: [2], stride: [1] },
  ]);
  const valid = torchZip(pkl, { 0: storage, 1: longs });
  const limit = (bytes: Buffer): number => 2 * bytes.length + (1 << 20);
  const r = fuzz(path.join(dir, 'm.pt'), valid, fuzzIterations(400), T.loadTorch, (result, bytes) => {
    const ts = tensorsIn(result);
    const n = bytesOf(ts);
    for (const t of ts) if (!t.disposed) t.dispose();
    assert.ok(n <= limit(bytes), `${n} tensor bytes from a ${bytes.length}-byte file`);
  }, fs.writeFileSync);
  assert.ok(r.refused > 0 && r.ok > 0, `both outcomes occur (${r.ok} loaded, ${r.refused} refused)`);
  // the pickle alone mutated, inside a well-formed archive, so the unpickler sees every mutant
  const zipOf = (b: Buffer): Buffer => torchZip(b, { 0: storage, 1: longs });
  const p = fuzz(path.join(dir, 'p.pt'), pkl, fuzzIterations(400), T.loadTorch, (result, bytes) => {
    const ts = tensorsIn(result);
    const n = bytesOf(ts);
    for (const t of ts) if (!t.disposed) t.dispose();
    assert.ok(n <= limit(zipOf(bytes)), `${n} tensor bytes from a ${zipOf(bytes).length}-byte file`);
  }, (f, b) => fs.writeFileSync(f, zipOf(b)));
  assert.ok(p.refused > 0 && p.ok > 0, `both outcomes occur for pickles (${p.ok} loaded, ${p.refused} refused)`);
  fs.rmSync(dir, { recursive: true });
});

test('fuzz: mutated safetensors files load within bounds or are refused by name', () => {
  const dir = tmpDir('fuzzst');
  const valid = Buffer.concat(T.encodeSafetensors({ a: T.tensor([1, 2, 3, 4, 5, 6], [2, 3]), b: T.tensor([1, -2], [2], 'int64'), c: T.zeros([0, 2]) }, { format: 'pt' }));
  const check = (result: unknown, bytes: Buffer): void => {
    const { tensors, metadata } = result as T.SafetensorsFile;
    const ts = [...tensors.values()];
    const n = bytesOf(ts);
    for (const t of ts) t.dispose();
    assert.ok(n <= bytes.length, `${n} tensor bytes from a ${bytes.length}-byte file`);
    assert.ok(Object.values(metadata).every((v) => typeof v === 'string'), 'metadata values are strings');
  };
  const r = fuzz(path.join(dir, 'm.safetensors'), valid, fuzzIterations(400), T.loadSafetensors, check, fs.writeFileSync);
  assert.ok(r.refused > 0 && r.ok > 0, `both outcomes occur (${r.ok} loaded, ${r.refused} refused)`);
  // the JSON header alone mutated, with a correct length field, so the header checks see every mutant
  const n = Number(valid.readBigUInt64LE(0));
  const header = valid.subarray(8, 8 + n), data = valid.subarray(8 + n);
  const withHeader = (h: Buffer): Buffer => { const l = Buffer.alloc(8); l.writeBigUInt64LE(BigInt(h.length)); return Buffer.concat([l, h, data]); };
  const h = fuzz(path.join(dir, 'h.safetensors'), header, fuzzIterations(400), T.loadSafetensors, (res, b) => check(res, withHeader(b)),
    (f, b) => fs.writeFileSync(f, withHeader(b)));
  assert.ok(h.refused > 0 && h.ok > 0, `both outcomes occur for headers (${h.ok} loaded, ${h.refused} refused)`);
  fs.rmSync(dir, { recursive: true });
});
