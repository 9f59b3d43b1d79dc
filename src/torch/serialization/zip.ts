// Reads the uncompressed (stored) zip archives that torch.save and np.savez write, and on request the
// deflated ones of np.savez_compressed. Stored or deflated entries, zip64 sizes and offsets; anything
// else is a clear error. Every field is bounds-checked against the file, so a hostile archive gives an
// error naming it, never a RangeError; a deflated entry inflates no further than its declared size.
import * as zlib from 'zlib';

export interface ZipEntry { name: string; offset: number; size: number; compressedSize: number; method: number }

export interface ZipOptions {
  /** accept deflated entries (method 8) whose declared size is at most `maxBytes` */
  deflate?: { maxBytes: number };
}

export interface ZipReader {
  entries: Map<string, ZipEntry>;
  /** The entry's bytes, inflated no further than its declared size. */
  read(name: string): Buffer;
  /**
   * The first `n` bytes of the entry (fewer if it is shorter), inflating only a prefix of a deflated one:
   * a header can be checked before the rest is inflated.
   */
  readPrefix(name: string, n: number): Buffer;
}

/** Lists entries and returns a reader for their bytes. Errors name `source`. */
export function readZip(buf: Buffer, source: string, options: ZipOptions = {}): ZipReader {
  const fail = (msg: string): never => { throw new Error(`${source}: ${msg}`); };
  const check = (at: number, n: number, what: string): void => {
    if (!Number.isSafeInteger(at) || at < 0 || at + n > buf.length) fail(`${what} at offset ${at} lies outside the ${buf.length}-byte file (truncated or corrupt zip)`);
  };
  const u16 = (at: number, what: string): number => { check(at, 2, what); return buf.readUInt16LE(at); };
  const u32 = (at: number, what: string): number => { check(at, 4, what); return buf.readUInt32LE(at); };
  const u64 = (at: number, what: string): number => {
    check(at, 8, what);
    const v = buf.readBigUInt64LE(at);
    if (v > BigInt(buf.length)) fail(`${what} ${v} exceeds the ${buf.length}-byte file`);
    return Number(v);
  };

  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--)
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  if (eocd < 0) fail('not a zip archive (no end-of-central-directory record; a legacy torch.save file or truncated?)');
  let count = u16(eocd + 10, 'entry count');
  let cdOffset = u32(eocd + 16, 'central directory offset');
  if (cdOffset === 0xffffffff || count === 0xffff) {
    const loc = eocd - 20;
    if (loc < 0 || buf.readUInt32LE(loc) !== 0x07064b50) fail('zip64 locator missing');
    const z = u64(loc + 8, 'zip64 end record offset');
    if (u32(z, 'zip64 end record') !== 0x06064b50) fail('zip64 end record missing');
    count = u64(z + 32, 'zip64 entry count');
    cdOffset = u64(z + 48, 'zip64 central directory offset');
  }
  if (count * 46 > buf.length) fail(`central directory claims ${count} entries, more than the file can hold`);
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (u32(p, `central directory entry ${i}`) !== 0x02014b50) fail(`corrupt central directory at entry ${i}`);
    check(p, 46, `central directory entry ${i}`);
    const method = buf.readUInt16LE(p + 10);
    let csize = buf.readUInt32LE(p + 20), size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28), extraLen = buf.readUInt16LE(p + 30), commentLen = buf.readUInt16LE(p + 32);
    let local = buf.readUInt32LE(p + 42);
    check(p + 46, nameLen + extraLen + commentLen, `name, extra field and comment of central directory entry ${i}`);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    // zip64 extended information: the fields that are 0xffffffff above follow in order size, compressed size, offset
    let e = p + 46 + nameLen;
    const end = e + extraLen;
    while (e + 4 <= end) {
      const id = buf.readUInt16LE(e), len = buf.readUInt16LE(e + 2);
      if (e + 4 + len > end) fail(`extra field of '${name}' runs past its declared length`);
      if (id === 0x0001) {
        let q = e + 4;
        const next = (): number => { if (q + 8 > e + 4 + len) fail(`zip64 field of '${name}' is too short`); const v = u64(q, `zip64 size of '${name}'`); q += 8; return v; };
        if (size === 0xffffffff) size = next();
        if (csize === 0xffffffff) csize = next();
        if (local === 0xffffffff) local = next();
      }
      e += 4 + len;
    }
    const deflate = options.deflate;
    if (method === 8 && deflate) {
      if (size > deflate.maxBytes) fail(`entry '${name}' declares ${size} bytes uncompressed, more than the ${deflate.maxBytes}-byte limit`);
    } else if (method !== 0) fail(`entry '${name}' is compressed (method ${method}); ${deflate ? 'only stored and deflated entries are supported' : 'torch.save archives are stored'}`);
    else if (csize !== size) fail(`entry '${name}' is stored but its compressed size ${csize} differs from its size ${size}`);
    if (u32(local, `local header of '${name}'`) !== 0x04034b50) fail(`corrupt local header for '${name}'`);
    const offset = local + 30 + u16(local + 26, `local header of '${name}'`) + u16(local + 28, `local header of '${name}'`);
    if (offset + csize > buf.length) fail(`entry '${name}' (${csize} bytes at offset ${offset}) extends past the end of the ${buf.length}-byte file (truncated?)`);
    if (entries.has(name)) fail(`entry '${name}' appears twice`);
    entries.set(name, { name, offset, size, compressedSize: csize, method });
    p = end + commentLen;
  }
  const entry = (name: string): ZipEntry => entries.get(name) ?? fail(`archive has no entry '${name}'`);
  const corrupt = (name: string, e: unknown): never => fail(`entry '${name}': corrupt deflate data (${(e as Error).message})`);
  return {
    entries,
    readPrefix(name: string, n: number): Buffer {
      const en = entry(name);
      const raw = buf.subarray(en.offset, en.offset + en.compressedSize);
      if (en.method === 0) return raw.subarray(0, n);
      // inflate ever longer prefixes of the compressed bytes, flushing what they decode, until n bytes
      // are out: each round inflates at most 1032x its input (deflate's largest ratio) plus n
      for (let k = 256; ; k *= 2) {
        const part = raw.subarray(0, Math.min(k, raw.length));
        let out: Buffer;
        try {
          out = zlib.inflateRawSync(part, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: n + 1032 * part.length + 1024 });
        } catch (e) {
          return corrupt(name, e);
        }
        if (out.length >= n || part.length === raw.length) return Buffer.from(out.subarray(0, Math.min(n, en.size)));
      }
    },
    read(name: string): Buffer {
      const en = entry(name);
      const raw = buf.subarray(en.offset, en.offset + en.compressedSize);
      if (en.method === 0) return raw;
      let out: Buffer;
      try {
        out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, en.size) });
      } catch (e) {
        const big = (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
        return big ? fail(`entry '${name}' inflates to more than its declared ${en.size} bytes`) : corrupt(name, e);
      }
      if (out.length !== en.size) fail(`entry '${name}' inflates to ${out.length} bytes, not its declared ${en.size}`);
      return out;
    },
  };
}
