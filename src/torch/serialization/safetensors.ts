// safetensors (https://github.com/huggingface/safetensors format): 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw little-endian data.
import { readFileNamed } from '../../util/files';
import { writeFileAtomic } from '../../util/atomic';
import { DType, fromBytes, Tensor } from '../tensor';

const TO_ST: Record<DType, string> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32',
  int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const FROM_ST: Record<string, DType> = Object.fromEntries(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));
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

/** Parses safetensors bytes; every malformed field gives an error naming `source` and the field. */
export function decodeSafetensors(buf: Buffer, source = '<buffer>'): SafetensorsFile {
  const fail = (msg: string): never => { throw new Error(`${source}: invalid safetensors file: ${msg}`); };
  if (buf.length < 8) fail(`file is ${buf.length} bytes, too short for the 8-byte header length`);
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8) fail(`header length ${n} exceeds the file size ${buf.length}`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  const data = buf.subarray(8 + n);
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors = new Map<string, Tensor>();
  const spans: [number, number, string][] = [];
  try {
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const dtype = FROM_ST[String(e?.dtype)];
      if (!dtype) fail(`tensor '${name}': unsupported dtype ${JSON.stringify(e?.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor '${name}': bad shape ${JSON.stringify(e.shape)}`);
      const off = e.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[0] > off[1])
        fail(`tensor '${name}': bad data_offsets ${JSON.stringify(off)}`);
      const [begin, end] = off as [number, number];
      const shape = e.shape as number[];
      const want = shape.reduce((a, b) => a * b, 1) * ELEMENT_SIZE[dtype];
      if (end - begin !== want) fail(`tensor '${name}': data_offsets span ${end - begin} bytes, shape [${shape}] of ${dtype} needs ${want}`);
      if (end > data.length) fail(`tensor '${name}': data_offsets end ${end} beyond the data (${data.length} bytes; file truncated?)`);
      spans.push([begin, end, name]);
      tensors.set(name, fromBytes(data.subarray(begin, end), dtype, shape));
    }
    spans.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++)
      if (spans[i][0] < spans[i - 1][1]) fail(`tensors '${spans[i - 1][2]}' and '${spans[i][2]}' overlap`);
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return { tensors, metadata };
}

export function loadSafetensors(file: string): SafetensorsFile {
  return decodeSafetensors(readFileNamed(file), file);
}
