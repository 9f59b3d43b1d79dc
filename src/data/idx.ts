// IDX files (MNIST, Fashion-MNIST), gzipped or not: magic 0x0000 <type> <ndim>, big-endian dims, data.
import { readFileNamed } from '../util/files';
import * as zlib from 'zlib';

export interface IdxArray { dims: number[]; data: Uint8Array }

/** Reads an unsigned-byte IDX file; errors name the file and what is wrong with it. */
export function readIdx(file: string): IdxArray {
  let buf = readFileNamed(file);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch (e) {
      throw new Error(`${file}: corrupt gzip data (${(e as Error).message})`);
    }
  }
  return parseIdx(buf, file);
}

export function parseIdx(buf: Buffer, file: string): IdxArray {
  if (buf.length < 4) throw new Error(`${file}: too short for an IDX header (${buf.length} bytes)`);
  if (buf[0] !== 0 || buf[1] !== 0) throw new Error(`${file}: bad IDX magic 0x${buf.subarray(0, 4).toString('hex')} (expected 0x0000 08 0N)`);
  if (buf[2] !== 0x08) throw new Error(`${file}: IDX element type 0x${buf[2].toString(16)} is not unsigned byte (0x08)`);
  const ndim = buf[3];
  if (ndim < 1 || ndim > 4) throw new Error(`${file}: IDX has ${ndim} dimensions (expected 1 to 4)`);
  const headerLen = 4 + 4 * ndim;
  if (buf.length < headerLen) throw new Error(`${file}: truncated IDX header`);
  const dims = Array.from({ length: ndim }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  const have = buf.length - headerLen;
  if (have < n) throw new Error(`${file}: truncated: header promises ${n} bytes of data (dims ${dims.join('x')}), file has ${have}`);
  if (have > n) throw new Error(`${file}: ${have - n} unexpected bytes after the data (dims ${dims.join('x')})`);
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + headerLen, n) };
}
