// IDX files (MNIST, Fashion-MNIST), gzipped or not: magic 0x0000 <type> <ndim>, big-endian dims, data.
// Memory is bounded by what the header declares: a gzip stream is inflated only that far.
import * as fs from 'fs';
import * as zlib from 'zlib';
import { readFileNamed } from '../util/files';

export interface IdxArray { dims: number[]; data: Uint8Array }

/** The most data bytes an IDX file may declare (MNIST's training images are 47 MB). */
export const IDX_MAX_BYTES = 256 << 20;

/** `dims` entries that are numbers must match the file's; checked from the header, before the data is read. */
export interface IdxExpect { dims?: (number | undefined)[]; why?: string }

/** Reads an unsigned-byte IDX file; errors name the file and what is wrong with it. */
export function readIdx(file: string, expect: IdxExpect = {}): IdxArray {
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  if (size > IDX_MAX_BYTES + 4 + 4 * 4) throw new Error(`${file}: ${size} bytes is more than an IDX file may hold here (${IDX_MAX_BYTES} bytes of data)`);
  const buf = readFileNamed(file);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    const head = parseIdxHeader(gunzipPrefix(buf, file), file, expect);
    return parseIdx(gunzipBounded(buf, file, head.headerLen + head.n), file, expect);
  }
  return parseIdx(buf, file, expect);
}

function gunzipError(file: string, e: unknown): Error {
  return new Error(`${file}: corrupt gzip data (${(e as Error).message})`);
}

/** The first bytes of the decompressed stream: enough for any IDX header, at most ~1 KB per compressed byte read. */
function gunzipPrefix(buf: Buffer, file: string): Buffer {
  let out = Buffer.alloc(0);
  for (const n of [1024, 16384]) {
    try {
      out = zlib.gunzipSync(buf.subarray(0, n), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    } catch (e) {
      throw gunzipError(file, e);
    }
    if (out.length >= 4 + 4 * 4 || n >= buf.length) break;
  }
  return out;
}

/** Decompresses at most `want` bytes; more data than that is an error, never a larger allocation. */
function gunzipBounded(buf: Buffer, file: string, want: number): Buffer {
  try {
    return zlib.gunzipSync(buf, { maxOutputLength: want + 1 });
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
      throw new Error(`${file}: gzip data decompresses to more than the ${want} bytes its IDX header declares (unexpected bytes after the data)`);
    throw gunzipError(file, e);
  }
}

interface IdxHeader { dims: number[]; headerLen: number; n: number }

function parseIdxHeader(buf: Buffer, file: string, expect: IdxExpect): IdxHeader {
  if (buf.length < 4) throw new Error(`${file}: too short for an IDX header (${buf.length} bytes)`);
  if (buf[0] !== 0 || buf[1] !== 0) throw new Error(`${file}: bad IDX magic 0x${buf.subarray(0, 4).toString('hex')} (expected 0x0000 08 0N)`);
  if (buf[2] !== 0x08) throw new Error(`${file}: IDX element type 0x${buf[2].toString(16)} is not unsigned byte (0x08)`);
  const ndim = buf[3];
  if (ndim < 1 || ndim > 4) throw new Error(`${file}: IDX has ${ndim} dimensions (expected 1 to 4)`);
  const headerLen = 4 + 4 * ndim;
  if (buf.length < headerLen) throw new Error(`${file}: truncated IDX header`);
  const dims = Array.from({ length: ndim }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  if (n > IDX_MAX_BYTES) throw new Error(`${file}: IDX header declares ${n} bytes of data (dims ${dims.join('x')}), more than the ${IDX_MAX_BYTES}-byte limit`);
  const want = expect.dims;
  if (want && (want.length !== ndim || want.some((d, i) => d !== undefined && d !== dims[i])))
    throw new Error(`${file}: IDX dims ${dims.join('x')}, expected ${want.map((d) => d ?? 'N').join('x')}${expect.why ? ` (${expect.why})` : ''}`);
  return { dims, headerLen, n };
}

export function parseIdx(buf: Buffer, file: string, expect: IdxExpect = {}): IdxArray {
  const { dims, headerLen, n } = parseIdxHeader(buf, file, expect);
  const have = buf.length - headerLen;
  if (have < n) throw new Error(`${file}: truncated: header promises ${n} bytes of data (dims ${dims.join('x')}), file has ${have}`);
  if (have > n) throw new Error(`${file}: ${have - n} unexpected bytes after the data (dims ${dims.join('x')})`);
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + headerLen, n) };
}
