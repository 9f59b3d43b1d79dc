// Reads the uncompressed (stored) zip archives that torch.save writes. Only what PyTorch writes is
// supported: stored entries, zip64 sizes and offsets; anything else is a clear error.

export interface ZipEntry { name: string; offset: number; size: number; method: number }

function findEocd(buf: Buffer): number {
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--)
    if (buf.readUInt32LE(i) === 0x06054b50) return i;
  return -1;
}

/** Lists entries and returns a reader for their bytes. Errors name `source`. */
export function readZip(buf: Buffer, source: string): { entries: Map<string, ZipEntry>; read(name: string): Buffer } {
  const fail = (msg: string): never => { throw new Error(`${source}: ${msg}`); };
  const eocd = findEocd(buf);
  if (eocd < 0) fail('not a zip archive (no end-of-central-directory record; a legacy torch.save file or truncated?)');
  let count = buf.readUInt16LE(eocd + 10);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  if (cdOffset === 0xffffffff || count === 0xffff) {
    const loc = eocd - 20;
    if (loc < 0 || buf.readUInt32LE(loc) !== 0x07064b50) fail('zip64 locator missing');
    const z = Number(buf.readBigUInt64LE(loc + 8));
    if (z + 56 > buf.length || buf.readUInt32LE(z) !== 0x06064b50) fail('zip64 end record missing');
    count = Number(buf.readBigUInt64LE(z + 32));
    cdOffset = Number(buf.readBigUInt64LE(z + 48));
  }
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) fail(`corrupt central directory at entry ${i}`);
    const method = buf.readUInt16LE(p + 10);
    let size = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28), extraLen = buf.readUInt16LE(p + 30), commentLen = buf.readUInt16LE(p + 32);
    let local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    // zip64 extended information: present fields follow in order size, compressed size, offset
    let e = p + 46 + nameLen;
    const end = e + extraLen;
    while (e + 4 <= end) {
      const id = buf.readUInt16LE(e), len = buf.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) { size = Number(buf.readBigUInt64LE(q)); q += 8; }
        if (buf.readUInt32LE(p + 24) === 0xffffffff) q += 8;
        if (local === 0xffffffff) local = Number(buf.readBigUInt64LE(q));
      }
      e += 4 + len;
    }
    if (local + 30 > buf.length || buf.readUInt32LE(local) !== 0x04034b50) fail(`corrupt local header for '${name}'`);
    const offset = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    entries.set(name, { name, offset, size, method });
    p = end + commentLen;
  }
  return {
    entries,
    read(name: string): Buffer {
      const en = entries.get(name);
      if (!en) return fail(`archive has no entry '${name}'`);
      if (en.method !== 0) fail(`entry '${name}' is compressed (method ${en.method}); torch.save archives are stored`);
      if (en.offset + en.size > buf.length) fail(`entry '${name}' extends past the end of the file (truncated?)`);
      return buf.subarray(en.offset, en.offset + en.size);
    },
  };
}
