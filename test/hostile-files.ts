// Builders for small torch.save archives and .npy arrays (valid or hostile) and a seeded byte mutator for fuzz tests.
import * as assert from 'assert/strict';
import * as zlib from 'zlib';

/** A .npy (version 1.0, numpy's header padding) of `data` as `descr` with `shape`; data may be left out or short on purpose. */
export function npy(descr: string, shape: number[], data: Buffer = Buffer.alloc(0), fortran = false): Buffer {
  let h = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  h += ' '.repeat((64 - ((10 + h.length + 1) % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head.writeUInt16LE(h.length, 8);
  return Buffer.concat([head, Buffer.from(h, 'latin1'), data]);
}

/** Pickle opcodes as bytes (protocol 2, what torch.save writes). */
export const P = {
  proto: Buffer.from([0x80, 2]),
  stop: Buffer.from('.'),
  mark: Buffer.from('('),
  tuple: Buffer.from('t'),
  emptyList: Buffer.from(']'),
  emptyDict: Buffer.from('}'),
  none: Buffer.from('N'),
  false: Buffer.from([0x89]),
  append: Buffer.from('a'),
  appends: Buffer.from('e'),
  setitem: Buffer.from('s'),
  reduce: Buffer.from('R'),
  binpersid: Buffer.from('Q'),
  str(s: string): Buffer {
    const b = Buffer.from(s, 'utf8');
    const n = Buffer.alloc(4);
    n.writeUInt32LE(b.length);
    return Buffer.concat([Buffer.from('X'), n, b]);
  },
  int(v: number): Buffer {
    const b = Buffer.alloc(5);
    b[0] = 0x4a;
    b.writeInt32LE(v, 1);
    return b;
  },
  global(module: string, name: string): Buffer { return Buffer.from(`c${module}\n${name}\n`, 'latin1'); },
  tupleOf(...items: Buffer[]): Buffer { return Buffer.concat([P.mark, ...items, P.tuple]); },
};

/** key: a string, number or null, or raw pickle bytes that push it. */
export interface TensorSpec { key?: unknown; storage: string; dtype?: string; numel: number; offset: number; size: number[]; stride: number[] }

/** A pickled OrderedDict of tensors, each `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`. */
export function statePickle(tensors: TensorSpec[]): Buffer {
  const parts = [P.proto, P.global('collections', 'OrderedDict'), P.tupleOf(), P.reduce];
  for (const t of tensors) {
    const key = Buffer.isBuffer(t.key) ? t.key : t.key === undefined ? P.str('w') : t.key === null ? P.none : typeof t.key === 'number' ? P.int(t.key) : P.str(String(t.key));
    const pid = P.tupleOf(P.str('storage'), P.global('torch', t.dtype ?? 'FloatStorage'), P.str(t.storage), P.str('cpu'), P.int(t.numel));
    parts.push(key, P.global('torch._utils', '_rebuild_tensor_v2'), P.tupleOf(
      pid, P.binpersid, P.int(t.offset), P.tupleOf(...t.size.map(P.int)), P.tupleOf(...t.stride.map(P.int)), P.false,
      P.global('collections', 'OrderedDict'), P.tupleOf(), P.reduce,
    ), P.reduce, P.setitem);
  }
  parts.push(P.stop);
  return Buffer.concat(parts);
}

/** A stored zip archive as torch.save writes it; `extra` sets each entry's central-directory extra field. */
export function storedZip(files: [string, Buffer][], extra: (name: string) => Buffer = () => Buffer.alloc(0)): Buffer {
  const locals: Buffer[] = [], central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const n = Buffer.from(name), crc = zlib.crc32(data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(20, 4); lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(data.length, 18); lh.writeUInt32LE(data.length, 22); lh.writeUInt16LE(n.length, 26);
    const x = extra(name);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(20, 4); ch.writeUInt16LE(20, 6); ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(data.length, 20); ch.writeUInt32LE(data.length, 24); ch.writeUInt16LE(n.length, 28);
    ch.writeUInt16LE(x.length, 30); ch.writeUInt32LE(offset, 42);
    locals.push(lh, n, data);
    central.push(ch, n, x);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0); eocd.writeUInt16LE(files.length, 8); eocd.writeUInt16LE(files.length, 10);
  eocd.writeUInt32LE(cd.length, 12); eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

/** A torch.save-style archive of `pkl` with the given storages. */
export function torchZip(pkl: Buffer, storages: Record<string, Buffer>, extra?: (name: string) => Buffer): Buffer {
  return storedZip([['archive/data.pkl', pkl], ['archive/byteorder', Buffer.from('little')],
    ...Object.entries(storages).map(([k, b]): [string, Buffer] => [`archive/data/${k}`, b])], extra);
}

/** A valid state dict archive: 'w' is float32 [2, 3] = 0..5. */
export function smallTorchFile(): Buffer {
  const data = Buffer.from(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
  return torchZip(statePickle([{ storage: '0', numel: 6, offset: 0, size: [2, 3], stride: [3, 1] }]), { 0: data });
}

/** mulberry32: small, seeded, good enough to pick mutations. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 0xff, 0x7f, 0x80, 1];
const INTERESTING32 = [0, 0xffffffff, 0x7fffffff, 0x80000000, 0xffff, 1];

/** 1 to 4 seeded mutations of `input`: bit flips, byte and 32-bit overwrites, truncation, duplicated or inserted ranges. */
export function mutate(input: Buffer, seed: number): Buffer {
  const r = rng(seed);
  const int = (n: number): number => Math.floor(r() * n);
  let b = Buffer.from(input);
  for (let m = 1 + int(4); m > 0; m--) {
    if (!b.length) break;
    const at = int(b.length);
    switch (int(7)) {
      case 0: b[at] ^= 1 << int(8); break;
      case 1: b[at] = INTERESTING[int(INTERESTING.length)]; break;
      case 2: if (at + 4 <= b.length) b.writeUInt32LE(INTERESTING32[int(INTERESTING32.length)], at); break;
      case 3: if (at + 4 <= b.length) b.writeUInt32BE(INTERESTING32[int(INTERESTING32.length)], at); break;
      case 4: b = b.subarray(0, at); break;
      case 5: { const len = 1 + int(Math.min(64, b.length - at)); b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]); break; }
      default: b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + int(8) }, () => int(256))), b.subarray(at)]);
    }
  }
  return b;
}

export const fuzzIterations = (dflt: number): number => Number(process.env.VARDEFENSE_FUZZ_ITERATIONS ?? dflt);

/**
 * Writes `iterations` mutants of `valid` to `file` and reads each: it must succeed (then `check`
 * its result against the file) or throw an Error naming the file, never a RangeError/TypeError,
 * and RSS must stay within `maxGrowthMB`. The failing seed is in the assertion message.
 */
export function fuzz(file: string, valid: Buffer, iterations: number, read: (f: string) => unknown, check: (result: unknown, bytes: Buffer) => void,
  write: (f: string, b: Buffer) => void, maxGrowthMB = 300): { ok: number; refused: number } {
  const base = Number(process.env.VARDEFENSE_FUZZ_SEED ?? 1);
  const rss0 = process.memoryUsage().rss;
  let ok = 0, refused = 0;
  const growthMB = (): number => (process.memoryUsage().rss - rss0) / 2 ** 20;
  for (let i = 0; i < iterations; i++) {
    const seed = base + i;
    if (i) assert.ok(growthMB() < maxGrowthMB, `seed ${seed - 1}: RSS grew by ${growthMB().toFixed(0)} MB`);
    const bytes = mutate(valid, seed);
    write(file, bytes);
    let result: unknown;
    try {
      result = read(file);
    } catch (e) {
      const err = e as Error;
      assert.ok(err instanceof Error && !(err instanceof RangeError) && !(err instanceof TypeError), `seed ${seed}: ${err?.constructor?.name}: ${err?.message}`);
      assert.ok(err.message.includes(file), `seed ${seed}: error does not name the file: ${err.message}`);
      refused++;
      continue;
    }
    try {
      check(result, bytes);
    } catch (e) {
      throw new Error(`seed ${seed}: ${(e as Error).message}`);
    }
    ok++;
  }
  assert.ok(growthMB() < maxGrowthMB, `RSS grew by ${growthMB().toFixed(0)} MB over ${iterations} mutants`);
  return { ok, refused };
}
