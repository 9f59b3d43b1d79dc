// NumPy's .npy format (versions 1-3): magic '\x93NUMPY', a Python-literal header dict, raw C-order data.
// Only the header fields numpy writes are read, with a parser for exactly that dict (never eval), and
// every number is checked against the data before anything is allocated.

export type NpyDescr = '|u1' | '|i1' | '<u2' | '<i2' | '<u4' | '<i4' | '<u8' | '<i8' | '|b1';

const ITEM_SIZE: Record<NpyDescr, number> = { '|u1': 1, '|i1': 1, '<u2': 2, '<i2': 2, '<u4': 4, '<i4': 4, '<u8': 8, '<i8': 8, '|b1': 1 };

export interface NpyArray { descr: NpyDescr; shape: number[]; /** the raw little-endian data, C order */ data: Buffer }

const MAX_HEADER = 1 << 16;
const MAX_DIMS = 8;

export interface NpyHeader {
  descr: NpyDescr;
  shape: number[];
  /** where the data starts: magic, version, header length and header */
  dataOffset: number;
  /** the data's size in bytes, as the shape and dtype declare it */
  dataBytes: number;
}

/** Bytes that always hold a .npy's magic, version and header length. */
export const NPY_PREAMBLE = 12;
/** The most bytes a .npy's preamble and header can take. */
export const NPY_MAX_HEADER_BYTES = NPY_PREAMBLE + MAX_HEADER;

/**
 * The bytes a .npy's header needs, from its first NPY_PREAMBLE bytes (or fewer, for a short array):
 * read that many, then parseNpyHeader. Bounded by the 64 KiB header limit.
 */
export function npyHeaderLength(prefix: Buffer, source: string): number {
  const fail = (msg: string): never => { throw new Error(`${source}: ${msg}`); };
  if (prefix.length < 10 || prefix.toString('latin1', 0, 6) !== '\x93NUMPY') fail('not a .npy array (bad magic)');
  const major = prefix[6];
  if (major < 1 || major > 3) fail(`unsupported .npy version ${major}.${prefix[7]} (1, 2 and 3 are read)`);
  const lenBytes = major === 1 ? 2 : 4;
  if (prefix.length < 8 + lenBytes) fail('truncated .npy header');
  const headerLen = major === 1 ? prefix.readUInt16LE(8) : prefix.readUInt32LE(8);
  if (headerLen > MAX_HEADER) fail(`.npy header length ${headerLen} exceeds ${MAX_HEADER} bytes`);
  return 8 + lenBytes + headerLen;
}

/**
 * A .npy's header, from a prefix of at least npyHeaderLength bytes: nothing of the data is needed, so
 * a compressed array's declared size is checked before it is inflated. `maxBytes` bounds the data the
 * header may declare. Errors name `source`.
 */
export function parseNpyHeader(prefix: Buffer, source: string, maxBytes: number): NpyHeader {
  const fail = (msg: string): never => { throw new Error(`${source}: ${msg}`); };
  const dataOffset = npyHeaderLength(prefix, source);
  if (dataOffset > prefix.length) fail(`.npy header (${dataOffset} bytes with its preamble) runs past the end of the ${prefix.length}-byte array`);
  const major = prefix[6], start = major === 1 ? 10 : 12;
  const header = prefix.toString(major === 3 ? 'utf8' : 'latin1', start, dataOffset);
  const fields = parseHeaderDict(header, fail);

  const descr = fields.get('descr');
  if (typeof descr !== 'string') return fail(`.npy header field 'descr' is missing or not a string`);
  const normal = descr.replace(/^=/, '<').replace(/^[<|>]?(u1|i1|b1)$/, '|$1') as NpyDescr;
  if (!(normal in ITEM_SIZE)) fail(`.npy dtype '${descr}' is not supported (unsigned/signed integers or bool, little-endian)`);
  const fortran = fields.get('fortran_order');
  if (fortran !== false) fail(`.npy header field 'fortran_order' is ${String(fortran)}; only C-order arrays (False) are read`);
  const shape = fields.get('shape');
  if (!Array.isArray(shape)) return fail(`.npy header field 'shape' is missing or not a tuple`);
  if (shape.length > MAX_DIMS) fail(`.npy shape has ${shape.length} dimensions (at most ${MAX_DIMS})`);
  let numel = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) fail(`.npy shape (${shape.join(', ')}) has a bad dimension ${d}`);
    numel *= d;
  }
  const dataBytes = numel * ITEM_SIZE[normal];
  if (!Number.isSafeInteger(dataBytes) || dataBytes > maxBytes) fail(`.npy shape (${shape.join(', ')}) x ${descr} declares ${dataBytes} bytes, more than the ${maxBytes}-byte limit`);
  return { descr: normal, shape, dataOffset, dataBytes };
}

/** Parses a .npy buffer; `maxBytes` bounds the data the header may declare. Errors name `source`. */
export function parseNpy(buf: Buffer, source: string, maxBytes: number): NpyArray {
  const h = parseNpyHeader(buf, source, maxBytes);
  const have = buf.length - h.dataOffset;
  if (have !== h.dataBytes) throw new Error(`${source}: .npy shape (${h.shape.join(', ')}) x ${h.descr} needs ${h.dataBytes} bytes of data, the array holds ${have}`);
  return { descr: h.descr, shape: h.shape, data: buf.subarray(h.dataOffset) };
}

/** The integer values of a 1-D-or-more integer array, as plain numbers (refusing values beyond 2^53). */
export function npyIntegers(a: NpyArray, source: string): number[] {
  const n = a.data.length / ITEM_SIZE[a.descr];
  const out = new Array<number>(n);
  const d = a.data;
  for (let i = 0; i < n; i++) {
    switch (a.descr) {
      case '|u1': case '|b1': out[i] = d[i]; break;
      case '|i1': out[i] = d.readInt8(i); break;
      case '<u2': out[i] = d.readUInt16LE(2 * i); break;
      case '<i2': out[i] = d.readInt16LE(2 * i); break;
      case '<u4': out[i] = d.readUInt32LE(4 * i); break;
      case '<i4': out[i] = d.readInt32LE(4 * i); break;
      default: {
        const v = a.descr === '<u8' ? d.readBigUInt64LE(8 * i) : d.readBigInt64LE(8 * i);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${source}: value ${v} at index ${i} is out of range`);
        out[i] = Number(v);
      }
    }
  }
  return out;
}

type Literal = string | number | boolean | number[];

/** The header dict numpy writes: {'descr': '<i8', 'fortran_order': False, 'shape': (3, 4), } */
function parseHeaderDict(s: string, fail: (msg: string) => never): Map<string, Literal> {
  let p = 0;
  const ws = (): void => { while (p < s.length && /\s/.test(s[p])) p++; };
  const expect = (c: string): void => { ws(); if (s[p] !== c) fail(`malformed .npy header at character ${p} (expected '${c}'): ${JSON.stringify(s.slice(0, 120))}`); p++; };
  const str = (): string => {
    ws();
    const q = s[p];
    if (q !== "'" && q !== '"') fail(`malformed .npy header at character ${p} (expected a string)`);
    const end = s.indexOf(q, p + 1);
    if (end < 0) fail('malformed .npy header (unterminated string)');
    const v = s.slice(p + 1, end);
    p = end + 1;
    return v;
  };
  const int = (): number => {
    ws();
    const m = /^\d{1,16}L?/.exec(s.slice(p, p + 18));
    if (!m) fail(`malformed .npy header at character ${p} (expected an integer)`);
    p += m![0].length;
    return Number(m![0].replace('L', ''));
  };
  const value = (): Literal => {
    ws();
    if (s[p] === "'" || s[p] === '"') return str();
    if (s.startsWith('True', p)) { p += 4; return true; }
    if (s.startsWith('False', p)) { p += 5; return false; }
    if (s[p] === '(') {
      p++;
      const items: number[] = [];
      for (;;) {
        ws();
        if (s[p] === ')') { p++; return items; }
        if (items.length >= MAX_DIMS + 1) fail('.npy shape has too many dimensions');
        items.push(int());
        ws();
        if (s[p] === ',') p++;
        else if (s[p] !== ')') fail(`malformed .npy shape at character ${p}`);
      }
    }
    return int();
  };
  const out = new Map<string, Literal>();
  expect('{');
  for (;;) {
    ws();
    if (s[p] === '}') break;
    const key = str();
    expect(':');
    const v = value();
    if (out.has(key)) fail(`.npy header repeats '${key}'`);
    out.set(key, v);
    ws();
    if (s[p] === ',') p++;
    else if (s[p] !== '}') fail(`malformed .npy header at character ${p}`);
  }
  return out;
}
