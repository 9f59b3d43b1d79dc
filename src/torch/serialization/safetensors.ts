// safetensors (https://github.com/huggingface/safetensors format): 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw little-endian data.
import { brief } from '../../util/brief';
import * as fs from 'fs';
import { writeFileAtomic } from '../../util/atomic';
import { DType, fromBytes, Tensor } from '../tensor';

const TO_ST: Record<DType, string> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32',
  int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const FROM_ST = new Map(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));
const ELEMENT_SIZE: Record<DType, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

export interface SafetensorsFile { tensors: Map<string, Tensor>; metadata: Record<string, string> }

/** Serialises tensors (any dtype, contiguous copies) and string metadata to safetensors bytes. */
export function encodeSafetensors(tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: Record<string, string> = {}): Buffer[] {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    const bytes = t.bytes();
    header[name] = { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [head, Buffer.from(json), ...chunks];
}

/** Writes a safetensors file atomically. */
export function saveSafetensors(file: string, tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

const MAX_HEADER = 100 << 20;

const MAX_DEPTH = 64;

/**
 * Scans a JSON text for what JSON.parse does not report: nesting deeper than MAX_DEPTH (slow to
 * parse, and a stack overflow to print) and the first key that appears twice in one object (JSON.parse
 * silently keeps the last).
 */
function scanJson(json: string): { tooDeep: boolean; duplicate?: string } {
  const objects: (Set<string> | null)[] = []; // null for an array
  let expectKey = false, duplicate: string | undefined;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      if (expectKey && duplicate === undefined) {
        let key: string;
        try { key = JSON.parse(json.slice(i, j + 1)) as string; } catch { return { tooDeep: false }; }
        const keys = objects[objects.length - 1];
        if (keys?.has(key)) duplicate = key;
        keys?.add(key);
      }
      expectKey = false;
      i = j;
    } else if (c === '{' || c === '[') {
      if (objects.push(c === '{' ? new Set() : null) > MAX_DEPTH) return { tooDeep: true };
      expectKey = c === '{';
    } else if (c === '}' || c === ']') { objects.pop(); expectKey = false; }
    else if (c === ',') expectKey = objects[objects.length - 1] instanceof Set;
  }
  return { tooDeep: false, duplicate };
}

interface TensorSpec { name: string; dtype: DType; shape: number[]; begin: number; end: number }
interface Layout { dataStart: number; metadata: Record<string, string>; specs: TensorSpec[] }

const failer = (source: string) => (msg: string): never => { throw new Error(`${source}: invalid safetensors file: ${msg}`); };

/** The header length from the first 8 bytes of a file of `size` bytes. */
function headerLength(first: Buffer, size: number, source: string): number {
  const fail = failer(source);
  if (size < 8 || first.length < 8) fail(`file is ${size} bytes, too short for the 8-byte header length`);
  const n = first.readBigUInt64LE(0);
  if (n > BigInt(size - 8)) fail(`header length ${n} exceeds the file size ${size}`);
  if (n > BigInt(MAX_HEADER)) fail(`header length ${n} exceeds the ${MAX_HEADER}-byte limit`);
  return Number(n);
}

/**
 * Checks the header (`head` holds the length and the JSON) of a file of `size` bytes: every tensor's
 * dtype, shape and data_offsets, which must tile the data section exactly.
 */
function parseLayout(head: Buffer, size: number, source: string): Layout {
  const fail = failer(source);
  const n = headerLength(head, size, source);
  const json = head.toString('utf8', 8, 8 + n);
  const scan = scanJson(json);
  if (scan.tooDeep) fail(`header nests deeper than ${MAX_DEPTH} levels`);
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('header is not a JSON object');
  if (scan.duplicate !== undefined) fail(`header has the key '${brief(scan.duplicate)}' twice`);
  const dataLength = size - 8 - n;
  const metadata: Record<string, string> = {};
  const specs: TensorSpec[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`__metadata__ is ${brief(raw)}, not an object of strings`);
      for (const [k, v] of Object.entries(raw as object)) {
        if (typeof v !== 'string') fail(`__metadata__ '${k}' is ${brief(v)}, not a string`);
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`tensor '${name}': entry is ${brief(raw)}, not an object`);
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof e.dtype === 'string' ? FROM_ST.get(e.dtype) : undefined;
    if (!dtype) throw new Error(`${source}: invalid safetensors file: unknown dtype '${brief(e.dtype)}' for tensor '${name}' in ${source}`);
    if (!Array.isArray(e.shape) || e.shape.length > 64 || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor '${name}': bad shape ${brief(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1])
      fail(`tensor '${name}': bad data_offsets ${brief(off)}`);
    const [begin, end] = off as [number, number];
    const shape = e.shape as number[];
    let want = ELEMENT_SIZE[dtype];
    for (const d of shape) want = Math.min(want * d, Number.MAX_SAFE_INTEGER);
    if (end - begin !== want) fail(`tensor '${name}': data_offsets span ${end - begin} bytes, shape [${shape}] of ${dtype} needs ${want}`);
    if (end > dataLength) fail(`tensor '${name}': data_offsets end ${end} beyond the data (${dataLength} bytes; file truncated?)`);
    specs.push({ name, dtype, shape, begin, end });
  }
  // as the reference implementation: tensors tile the data section exactly, no overlaps, holes or trailing bytes
  const sorted = [...specs].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const s of sorted) {
    if (s.begin < at) fail(`tensor '${s.name}' (bytes ${s.begin}..${s.end}) overlaps another tensor`);
    if (s.begin > at && s.end > s.begin) fail(`bytes ${at}..${s.begin} before tensor '${s.name}' belong to no tensor`);
    at = Math.max(at, s.end);
  }
  if (at !== dataLength) fail(`data section has ${dataLength - at} bytes after the last tensor (${dataLength} in all)`);
  return { dataStart: 8 + n, metadata, specs };
}

function build(layout: Layout, data: Buffer, source: string): SafetensorsFile {
  const tensors = new Map<string, Tensor>();
  try {
    for (const s of layout.specs) tensors.set(s.name, fromBytes(data.subarray(s.begin, s.end), s.dtype, s.shape));
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw new Error(`${source}: ${(e as Error).message}`);
  }
  return { tensors, metadata: layout.metadata };
}

/** Parses safetensors bytes; every malformed field gives an error naming `source` and the field. */
export function decodeSafetensors(buf: Buffer, source = '<buffer>'): SafetensorsFile {
  const layout = parseLayout(buf, buf.length, source);
  return build(layout, buf.subarray(layout.dataStart), source);
}

/** Reads a safetensors file: the header is checked before the data is read, so a lying header costs only itself. */
export function loadSafetensors(file: string): SafetensorsFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    const read = (pos: number, len: number): Buffer => {
      try {
        const b = Buffer.alloc(len);
        const got = fs.readSync(fd, b, 0, len, pos);
        return b.subarray(0, got);
      } catch (e) {
        throw new Error(`cannot read ${file}: ${(e as Error).message}`);
      }
    };
    const size = fs.fstatSync(fd).size;
    const n = headerLength(read(0, 8), size, file);
    const layout = parseLayout(read(0, 8 + n), size, file);
    const data = read(layout.dataStart, size - layout.dataStart);
    if (data.length !== size - layout.dataStart) throw new Error(`${file}: changed size while being read`);
    return build(layout, data, file);
  } finally {
    fs.closeSync(fd);
  }
}
