// Reads torch.save(...) zip files without executing anything: a restricted unpickler that knows
// only tensors, storages, OrderedDict and plain containers. Any other global is refused by name.
import { brief } from '../../util/brief';
import { readFileNamed } from '../../util/files';
import { DType, fromBytes, op, Tensor } from '../tensor';
import { readZip } from './zip';

// Maps, not object literals: pickle-controlled names must never reach inherited properties ('constructor', '__proto__').
const STORAGE_DTYPES = new Map<string, DType>([
  ['FloatStorage', 'float32'], ['DoubleStorage', 'float64'], ['HalfStorage', 'float16'], ['BFloat16Storage', 'bfloat16'],
  ['LongStorage', 'int64'], ['IntStorage', 'int32'], ['ShortStorage', 'int16'], ['CharStorage', 'int8'], ['ByteStorage', 'uint8'],
  ['BoolStorage', 'bool'],
]);
const CALLABLE = new Set(['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter']);
const ELEMENT_SIZE: Record<DType, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

class Global { constructor(readonly module: string, readonly name: string) {} get full(): string { return `${this.module}.${this.name}`; } }
class StorageRef { constructor(readonly dtype: DType, readonly key: string, readonly numel: number) {} }
const MARK = Symbol('mark');

export type PickleValue = null | boolean | number | string | Uint8Array | Tensor | PickleValue[] | Map<string | number, PickleValue>;

const asStrided = op('aten::as_strided');

// Bounds on what a pickle may build: a state dict's pickle takes ~50 opcodes per tensor, so these
// leave room for ~20k tensors while a hostile pickle stays near 100 MB and a second or two.
const MAX_OPS = 1_000_000;
const MAX_STACK = 500_000;
const MAX_MEMO = 500_000;
const MAX_DIMS = 64;

/** Offset, sizes and strides of a view, checked against its storage before libtorch sees them. */
function checkView(offset: unknown, size: unknown, stride: unknown, storageNumel: number): string | undefined {
  const ints = (v: unknown): v is number[] => Array.isArray(v) && v.length <= MAX_DIMS && v.every((d) => Number.isSafeInteger(d) && d >= 0);
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) return `bad storage offset ${brief(offset)}`;
  if (!ints(size) || !ints(stride) || size.length !== stride.length) return `bad size/stride (${brief(size)}, ${brief(stride)})`;
  let numel = 1, last = offset as number;
  for (let i = 0; i < size.length; i++) {
    numel *= size[i];
    if (size[i] > 0) last += (size[i] - 1) * stride[i];
  }
  if (numel === 0) return (offset as number) <= storageNumel ? undefined : `offset ${offset} beyond the storage's ${storageNumel} elements`;
  if (!Number.isSafeInteger(last) || last >= storageNumel)
    return `view (offset ${offset}, size [${size}], stride [${stride}]) reaches element ${last} of a ${storageNumel}-element storage`;
  // expanded (stride 0) or overlapping views would materialise more than the file holds
  if (numel > storageNumel) return `view of size [${size}] has ${numel} elements, more than its ${storageNumel}-element storage (expanded/overlapping views are refused)`;
  return undefined;
}

/** The tensors reachable from `v`, found without recursion (memo references can make cycles). */
function tensorsIn(v: unknown): Set<Tensor> {
  const found = new Set<Tensor>(), seen = new Set<unknown>(), todo = [v];
  while (todo.length) {
    const x = todo.pop();
    if (x instanceof Tensor) found.add(x);
    else if ((Array.isArray(x) || x instanceof Map) && !seen.has(x)) {
      seen.add(x);
      for (const y of x.values()) todo.push(y);
    }
  }
  return found;
}

/**
 * Unpickles `data` (protocol <= 4). `storage(ref)` supplies the raw bytes of a persistent storage.
 * Only the allow-listed globals can be built; everything else is an error naming the global.
 */
function unpickle(data: Buffer, source: string, storage: (key: string) => Buffer, maxBytes: number): PickleValue {
  const stack: unknown[] = [];
  let built = 0;
  const memo = new Map<number, unknown>();
  const storages = new Map<string, Tensor>();
  const created: Tensor[] = [];
  let p = 0;
  const fail = (msg: string): never => { throw new Error(`${source}: ${msg}`); };
  const need = (n: number): void => { if (p + n > data.length) fail(`pickle data truncated at offset ${p}`); };
  const u8 = (): number => { need(1); return data[p++]; };
  const u32 = (): number => { need(4); const v = data.readUInt32LE(p); p += 4; return v; };
  const bytes = (n: number): Buffer => { need(n); const b = data.subarray(p, p + n); p += n; return b; };
  const line = (): string => { const e = data.indexOf(0x0a, p); if (e < 0) fail('unterminated GLOBAL'); const s = data.toString('latin1', p, e); p = e + 1; return s; };
  const pop = (): unknown => { if (!stack.length) fail(`pickle stack underflow at offset ${p}`); return stack.pop(); };
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail(`pickle MARK missing at offset ${p}`);
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const top = (): unknown => { if (!stack.length) fail(`pickle stack underflow at offset ${p}`); return stack[stack.length - 1]; };
  const setItems = (d: unknown, kv: unknown[]): void => {
    if (!(d instanceof Map)) fail(`SETITEM on a ${typeof d}, expected a dict`);
    for (let i = 0; i + 1 < kv.length; i += 2) (d as Map<unknown, unknown>).set(kv[i], kv[i + 1]);
  };
  const globalOf = (module: unknown, name: unknown): Global => {
    if (typeof module !== 'string' || typeof name !== 'string') return fail('STACK_GLOBAL with a module or name that is not a string');
    const g = new Global(module, name);
    const ok = CALLABLE.has(g.full) || (module === 'torch' && STORAGE_DTYPES.has(name));
    if (!ok) fail(`refusing to load global '${g.full}': only tensors and plain dicts are read (nothing is executed)`);
    return g;
  };
  const baseTensor = (ref: StorageRef): Tensor => {
    let t = storages.get(ref.key);
    if (t && (t.dtype !== ref.dtype || t.shape[0] !== ref.numel)) fail(`storage '${ref.key}' is used with two different types or sizes`);
    if (!t) {
      const raw = storage(ref.key);
      const want = ref.numel * ELEMENT_SIZE[ref.dtype];
      if (raw.length < want) fail(`storage '${ref.key}' has ${raw.length} bytes, expected ${want} (truncated?)`);
      t = fromBytes(raw.subarray(0, want), ref.dtype, [ref.numel]);
      storages.set(ref.key, t);
    }
    return t;
  };
  const reduce = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof Global) || !Array.isArray(args)) return fail('REDUCE on something that is not an allowed global');
    switch (fn.full) {
      case 'collections.OrderedDict': return new Map();
      case 'torch._utils._rebuild_tensor_v2': {
        const [ref, offset, size, stride] = args as [StorageRef, unknown, unknown, unknown];
        if (!(ref instanceof StorageRef)) return fail('_rebuild_tensor_v2 without a storage');
        const bad = checkView(offset, size, stride, ref.numel);
        if (bad) return fail(`tensor on storage '${ref.key}': ${bad}`);
        built += (size as number[]).reduce((a, b) => a * b, 1) * ELEMENT_SIZE[ref.dtype];
        if (built > maxBytes) return fail(`tensors built from this file would exceed ${maxBytes} bytes (many views of shared storages?)`);
        const base = baseTensor(ref);
        try {
          const view = asStrided(base, size as number[], stride as number[], offset as number) as Tensor;
          const t = view.contiguous();
          view.dispose();
          created.push(t);
          return t;
        } catch (e) {
          return fail(`cannot build tensor on storage '${ref.key}': ${(e as Error).message}`);
        }
      }
      case 'torch._utils._rebuild_parameter': return args[0];
      default: return fail(`cannot call '${fn.full}'`);
    }
  };

  try {
    for (let ops = 0; ; ops++) {
      if (ops > MAX_OPS) fail(`pickle runs more than ${MAX_OPS} opcodes (not a state dict this reader accepts)`);
      if (stack.length > MAX_STACK) fail(`pickle stack grows beyond ${MAX_STACK} items`);
      if (memo.size > MAX_MEMO) fail(`pickle memo grows beyond ${MAX_MEMO} items`);
      const opcode = u8();
      switch (opcode) {
        case 0x80: u8(); break; // PROTO
        case 0x95: bytes(8); break; // FRAME
        case 0x2e: { // STOP
          const result = pop();
          const kept = tensorsIn(result);
          for (const t of created) if (!kept.has(t)) t.dispose();
          return result as PickleValue;
        }
        case 0x28: stack.push(MARK); break;
        case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
        case 0x5d: stack.push([]); break; // EMPTY_LIST
        case 0x29: stack.push([]); break; // EMPTY_TUPLE
        case 0x4e: stack.push(null); break;
        case 0x88: stack.push(true); break;
        case 0x89: stack.push(false); break;
        case 0x4b: stack.push(u8()); break; // BININT1
        case 0x4d: { need(2); stack.push(data.readUInt16LE(p)); p += 2; break; } // BININT2
        case 0x4a: { need(4); stack.push(data.readInt32LE(p)); p += 4; break; } // BININT
        case 0x8a: { // LONG1
          const n = u8();
          const b = bytes(n);
          let v = 0n;
          for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
          if (n && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
          stack.push(Number(v));
          break;
        }
        case 0x47: { need(8); stack.push(data.readDoubleBE(p)); p += 8; break; } // BINFLOAT
        case 0x58: { const n = u32(); stack.push(bytes(n).toString('utf8')); break; } // BINUNICODE
        case 0x8c: { const n = u8(); stack.push(bytes(n).toString('utf8')); break; } // SHORT_BINUNICODE
        case 0x54: { const n = u32(); stack.push(bytes(n).toString('latin1')); break; } // BINSTRING
        case 0x55: { const n = u8(); stack.push(bytes(n).toString('latin1')); break; } // SHORT_BINSTRING
        case 0x42: { const n = u32(); stack.push(new Uint8Array(bytes(n))); break; } // BINBYTES
        case 0x43: { const n = u8(); stack.push(new Uint8Array(bytes(n))); break; } // SHORT_BINBYTES
        case 0x74: stack.push(popMark()); break; // TUPLE
        case 0x85: stack.push([pop()]); break;
        case 0x86: { const b = pop(); stack.push([pop(), b]); break; }
        case 0x87: { const c = pop(), b = pop(); stack.push([pop(), b, c]); break; }
        case 0x6c: stack.push(popMark()); break; // LIST
        case 0x64: { const kv = popMark(); const d = new Map(); setItems(d, kv); stack.push(d); break; } // DICT
        case 0x61: { const v = pop(); const l = top(); if (!Array.isArray(l)) fail('APPEND to a non-list'); (l as unknown[]).push(v); break; }
        case 0x65: { const vs = popMark(); const l = top(); if (!Array.isArray(l)) fail('APPENDS to a non-list'); for (const v of vs) (l as unknown[]).push(v); break; }
        case 0x73: { const v = pop(), k = pop(); setItems(top(), [k, v]); break; } // SETITEM
        case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
        case 0x71: memo.set(u8(), top()); break; // BINPUT
        case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
        case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
        case 0x68: { const k = u8(); if (!memo.has(k)) fail(`memo key ${k} missing`); stack.push(memo.get(k)); break; }
        case 0x6a: { const k = u32(); if (!memo.has(k)) fail(`memo key ${k} missing`); stack.push(memo.get(k)); break; }
        case 0x63: { const m = line(); const n = line(); stack.push(globalOf(m, n)); break; } // GLOBAL
        case 0x93: { const n = pop(), m = pop(); stack.push(globalOf(m, n)); break; } // STACK_GLOBAL
        case 0x52: { const args = pop(); const fn = pop(); stack.push(reduce(fn, args)); break; } // REDUCE
        case 0x62: { pop(); if (!(top() instanceof Map)) fail('BUILD on an object that is not a dict'); break; } // BUILD: OrderedDict._metadata, ignored
        case 0x51: { // BINPERSID: ('storage', StorageClass, key, location, numel)
          const pid = pop();
          if (!Array.isArray(pid) || pid[0] !== 'storage' || !(pid[1] instanceof Global)) fail('unsupported persistent id');
          const [, cls, key, , numel] = pid as [string, Global, unknown, unknown, unknown];
          const dtype = cls.module === 'torch' ? STORAGE_DTYPES.get(cls.name) : undefined;
          if (!dtype) return fail(`unsupported storage type '${cls.full}'`);
          if (typeof key !== 'string' || !Number.isSafeInteger(numel) || (numel as number) < 0) return fail(`bad persistent storage id (key ${brief(key)}, ${brief(numel)} elements)`);
          stack.push(new StorageRef(dtype, key, numel as number));
          break;
        }
        default:
          fail(`unsupported pickle opcode 0x${opcode.toString(16)} at offset ${p - 1}`);
      }
    }
  } catch (e) {
    for (const t of created) if (!t.disposed) t.dispose();
    throw e;
  } finally {
    for (const t of storages.values()) t.dispose();
  }
}

/** Loads a torch.save(...) file: tensors, numbers, strings, lists, and dicts (as Maps). */
export function loadTorch(file: string): PickleValue {
  const buf = readFileNamed(file);
  const zip = readZip(buf, file);
  const pkl = [...zip.entries.keys()].find((n) => n.endsWith('/data.pkl') || n === 'data.pkl');
  if (!pkl) throw new Error(`${file}: no data.pkl in the archive (is it a torch.save file? TorchScript files are not supported)`);
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const order = zip.entries.get(`${prefix}byteorder`);
  if (order && zip.read(order.name).toString() !== 'little') throw new Error(`${file}: big-endian archives are not supported`);
  // views of shared storages may legitimately repeat bytes (tied weights), but not without bound
  return unpickle(zip.read(pkl), file, (key) => zip.read(`${prefix}data/${key}`), 2 * buf.length + (1 << 20));
}

function isTensorMap(v: PickleValue): v is Map<string, Tensor> {
  return v instanceof Map && v.size > 0 && [...v.values()].every((x) => x instanceof Tensor);
}

/**
 * Loads a state dict saved with torch.save(model.state_dict()) or a checkpoint dict holding one
 * under 'state_dict', 'model', 'model_state_dict' or 'net'. A 'module.' prefix (DataParallel) is removed.
 */
export function loadTorchStateDict(file: string): Map<string, Tensor> {
  const v = loadTorch(file);
  let sd: Map<string, Tensor> | undefined;
  if (isTensorMap(v)) sd = v;
  else if (v instanceof Map) {
    for (const key of ['state_dict', 'model_state_dict', 'model', 'net']) {
      const c = v.get(key);
      if (c && isTensorMap(c)) { sd = c; break; }
    }
  }
  if (!sd) throw new Error(`${file}: no state dict found (expected a dict of tensors, or one under 'state_dict', 'model_state_dict', 'model' or 'net')`);
  for (const k of sd.keys())
    if (typeof k !== 'string') throw new Error(`${file}: state dict key ${k === null ? 'None' : brief(k)} (${k === null ? 'null' : typeof k}) is not a string`);
  const strip = [...sd.keys()].every((k) => k.startsWith('module.'));
  return strip ? new Map([...sd].map(([k, t]) => [k.slice('module.'.length), t])) : sd;
}
