// Tensor: a typed TypeScript face over libtorch tensors; every operation is an ATen operator call.
import { native, Handle } from './native';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';
export type Shape = readonly number[];
export type Scalar = number | boolean;
export type TensorLike = Tensor | number | boolean;

/** Memory formats as ATen numbers them. */
export const MemoryFormat = { contiguous: 0, preserve: 1, channelsLast: 2 } as const;

const scopes: Tensor[][] = [];

export class Tensor {
  /** The native handle; null once disposed by dispose(). */
  readonly handle: Handle;

  constructor(handle: Handle) {
    this.handle = handle;
    const s = scopes[scopes.length - 1];
    if (s) s.push(this);
  }

  // ---- metadata ------------------------------------------------------------------------
  get shape(): number[] { return native.shape(this.handle); }
  get dtype(): DType { return native.dtype(this.handle) as DType; }
  get device(): string { return native.device(this.handle); }
  get ndim(): number { return this.shape.length; }
  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
  get disposed(): boolean { return native.isDisposed(this.handle); }
  size(dim: number): number { const s = this.shape; return s[dim < 0 ? s.length + dim : dim]; }
  toString(): string { return `Tensor(${this.dtype}[${this.shape.join(', ')}])`; }

  dispose(): void { native.dispose(this.handle); }

  // ---- autograd ------------------------------------------------------------------------
  get requiresGrad(): boolean { return native.requiresGrad(this.handle); }
  requiresGrad_(on = true): this { native.setRequiresGrad(this.handle, on); return this; }
  get isLeaf(): boolean { return native.isLeaf(this.handle); }
  get grad(): Tensor | null { const g = native.grad(this.handle); return g ? new Tensor(g) : null; }
  set grad(g: Tensor | null) { native.setGrad(this.handle, g ? g.handle : null); }
  backward(grad?: Tensor, retainGraph = false): void { native.backward(this.handle, grad ? grad.handle : null, retainGraph); }
  detach(): Tensor { return OP.detach(this); }

  // ---- data ----------------------------------------------------------------------------
  /**
   * A copy of the data as the matching typed array (bool and uint8 give Uint8Array; float16 and bfloat16,
   * which JS has no array for, give their exact values as a Float32Array: under bf16 autocast activations
   * are bfloat16, and code that reads them runs unchanged). view_() and bytes() give the raw 16-bit data.
   */
  toArray(): TypedArrayOf<DType> {
    const dt = this.dtype;
    if (dt === 'bfloat16' || dt === 'float16') {
      const f = OP.toDtype(this, 'float32');
      try { return typedView('float32', native.bytes(f.handle, true)); } finally { f.dispose(); }
    }
    return typedView(dt, native.bytes(this.handle, true));
  }
  /** Zero-copy view of a contiguous tensor's memory; it stays valid while the view is referenced. */
  view_(): TypedArrayOf<DType> { return typedView(this.dtype, native.bytes(this.handle, false)); }
  /** Plain numbers (int64 converted; exact below 2^53). */
  toList(): number[] { return Array.from(this.toArray() as ArrayLike<number | bigint>, Number); }
  item(): number { if (this.numel !== 1) throw new Error(`item(): tensor has ${this.numel} elements, expected 1`); return Number(OP.item(this)); }
  bytes(): Buffer { return Buffer.from(native.bytes(this.handle, true)); }

  // ---- elementwise arithmetic (broadcasting) -------------------------------------------
  add(o: TensorLike, alpha: number = 1): Tensor { return OP.add(this, o, alpha); }
  sub(o: TensorLike, alpha: number = 1): Tensor { return OP.sub(this, o, alpha); }
  mul(o: TensorLike): Tensor { return OP.mul(this, o); }
  div(o: TensorLike, roundingMode?: 'trunc' | 'floor'): Tensor { return roundingMode ? OP.divMode(this, o, roundingMode) : OP.div(this, o); }
  pow(e: TensorLike): Tensor { return e instanceof Tensor ? OP.powT(this, e) : OP.pow(this, e); }
  neg(): Tensor { return OP.neg(this); }
  abs(): Tensor { return OP.abs(this); }
  sign(): Tensor { return OP.sign(this); }
  sqrt(): Tensor { return OP.sqrt(this); }
  rsqrt(): Tensor { return OP.rsqrt(this); }
  exp(): Tensor { return OP.exp(this); }
  log(): Tensor { return OP.log(this); }
  square(): Tensor { return OP.square(this); }
  relu(): Tensor { return OP.relu(this); }
  sigmoid(): Tensor { return OP.sigmoid(this); }
  tanh(): Tensor { return OP.tanh(this); }
  clamp(min?: number | null, max?: number | null): Tensor { return OP.clamp(this, min ?? null, max ?? null); }
  maximum(o: Tensor): Tensor { return OP.maximum(this, o); }
  minimum(o: Tensor): Tensor { return OP.minimum(this, o); }
  floor(): Tensor { return OP.floor(this); }
  round(): Tensor { return OP.round(this); }

  // ---- comparisons and logic -----------------------------------------------------------
  eq(o: TensorLike): Tensor { return OP.eq(this, o); }
  ne(o: TensorLike): Tensor { return OP.ne(this, o); }
  lt(o: TensorLike): Tensor { return OP.lt(this, o); }
  le(o: TensorLike): Tensor { return OP.le(this, o); }
  gt(o: TensorLike): Tensor { return OP.gt(this, o); }
  ge(o: TensorLike): Tensor { return OP.ge(this, o); }
  logicalAnd(o: Tensor): Tensor { return OP.logicalAnd(this, o); }
  logicalOr(o: Tensor): Tensor { return OP.logicalOr(this, o); }
  logicalNot(): Tensor { return OP.logicalNot(this); }
  isfinite(): Tensor { return OP.isfinite(this); }

  // ---- reductions ----------------------------------------------------------------------
  sum(dim?: number | number[], keepdim = false): Tensor { return dim === undefined ? OP.sumAll(this) : OP.sum(this, dims(dim), keepdim); }
  mean(dim?: number | number[], keepdim = false): Tensor { return dim === undefined ? OP.meanAll(this) : OP.mean(this, dims(dim), keepdim); }
  /** Variance; unbiased (n-1) by default as in PyTorch. */
  var(dim?: number | number[], unbiased = true, keepdim = false): Tensor { return OP.var(this, dim === undefined ? null : dims(dim), unbiased, keepdim); }
  std(dim?: number | number[], unbiased = true, keepdim = false): Tensor { return OP.std(this, dim === undefined ? null : dims(dim), unbiased, keepdim); }
  amax(dim: number | number[] = [], keepdim = false): Tensor { return OP.amax(this, dims(dim), keepdim); }
  amin(dim: number | number[] = [], keepdim = false): Tensor { return OP.amin(this, dims(dim), keepdim); }
  /** Max over a dimension: [values, indices]. */
  max(dim: number, keepdim = false): [Tensor, Tensor] { return OP.maxDim(this, dim, keepdim) as [Tensor, Tensor]; }
  min(dim: number, keepdim = false): [Tensor, Tensor] { return OP.minDim(this, dim, keepdim) as [Tensor, Tensor]; }
  argmax(dim?: number, keepdim = false): Tensor { return OP.argmax(this, dim ?? null, keepdim); }
  argmin(dim?: number, keepdim = false): Tensor { return OP.argmin(this, dim ?? null, keepdim); }
  norm(p: number = 2, dim?: number | number[], keepdim = false): Tensor { return dim === undefined ? OP.normAll(this, p) : OP.norm(this, p, dims(dim), keepdim); }
  any(): Tensor { return OP.any(this); }
  all(): Tensor { return OP.all(this); }
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] { return OP.topk(this, k, dim, largest, sorted) as [Tensor, Tensor]; }
  sort(dim = -1, descending = false): [Tensor, Tensor] { return OP.sort(this, dim, descending) as [Tensor, Tensor]; }
  cumsum(dim: number): Tensor { return OP.cumsum(this, dim); }

  // ---- linear algebra ------------------------------------------------------------------
  matmul(o: Tensor): Tensor { return OP.matmul(this, o); }
  mm(o: Tensor): Tensor { return OP.mm(this, o); }
  t(): Tensor { return OP.t(this); }

  // ---- shape ---------------------------------------------------------------------------
  reshape(...shape: number[] | [Shape]): Tensor { return OP.reshape(this, flat(shape)); }
  view(...shape: number[] | [Shape]): Tensor { return OP.view(this, flat(shape)); }
  flatten(startDim = 0, endDim = -1): Tensor { return OP.flatten(this, startDim, endDim); }
  permute(...order: number[] | [Shape]): Tensor { return OP.permute(this, flat(order)); }
  transpose(d0: number, d1: number): Tensor { return OP.transpose(this, d0, d1); }
  squeeze(dim?: number): Tensor { return dim === undefined ? OP.squeezeAll(this) : OP.squeeze(this, dim); }
  unsqueeze(dim: number): Tensor { return OP.unsqueeze(this, dim); }
  expand(...shape: number[] | [Shape]): Tensor { return OP.expand(this, flat(shape)); }
  repeat(...times: number[] | [Shape]): Tensor { return OP.repeat(this, flat(times)); }
  flip(dims: number[]): Tensor { return OP.flip(this, dims); }
  contiguous(memoryFormat: number = MemoryFormat.contiguous): Tensor { return OP.contiguous(this, memoryFormat); }
  /**
   * This batch in channels-last layout (stored N, H, W, C), which oneDNN's convolutions take without
   * reorders, as PyTorch's x.contiguous(memory_format=torch.channels_last) for a model turned
   * channels-last. A 1-channel batch is contiguous in both layouts, so contiguous(channelsLast) keeps its
   * NCHW strides and libtorch goes on in NCHW; it gets channels-last strides instead (a view of the same
   * memory), so the layers after it run channels-last.
   */
  channelsLast(): Tensor {
    if (this.ndim === 4 && this.shape[1] === 1 && this.isContiguous()) {
      const [n, , h, w] = this.shape;
      return callOp('aten::as_strided', '', this, [n, 1, h, w], [h * w, 1, w, 1], null);
    }
    return this.contiguous(MemoryFormat.channelsLast);
  }
  /** Whether the data is contiguous in that layout (MemoryFormat.contiguous or MemoryFormat.channelsLast). */
  isContiguous(memoryFormat: number = MemoryFormat.contiguous): boolean { return native.isContiguous(this.handle, memoryFormat); }
  /** The layout libtorch's kernels take this tensor to be in, by its strides (Tensor::suggest_memory_format). */
  get memoryFormat(): number { return native.suggestMemoryFormat(this.handle); }
  clone(): Tensor { return OP.clone(this); }
  /** Slice along dim: [start, end) with step, like Python's x[:, start:end:step]. */
  slice(dim: number, start = 0, end?: number, step = 1): Tensor { return OP.slice(this, dim, start, end ?? null, step); }
  narrow(dim: number, start: number, length: number): Tensor { return OP.narrow(this, dim, start, length); }
  select(dim: number, index: number): Tensor { return OP.select(this, dim, index); }

  // ---- indexing ------------------------------------------------------------------------
  /** Advanced indexing x[i0, i1, ...] with index tensors (null = the full dimension). */
  index(indices: (Tensor | null)[]): Tensor { return OP.index(this, indices); }
  indexSelect(dim: number, index: Tensor): Tensor { return OP.indexSelect(this, dim, index); }
  maskedFill(mask: Tensor, value: number): Tensor { return OP.maskedFill(this, mask, value); }
  maskedSelect(mask: Tensor): Tensor { return OP.maskedSelect(this, mask); }
  gather(dim: number, index: Tensor): Tensor { return OP.gather(this, dim, index); }
  scatter(dim: number, index: Tensor, src: Tensor | number): Tensor { return src instanceof Tensor ? OP.scatter(this, dim, index, src) : OP.scatterValue(this, dim, index, src); }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return OP.scatterAdd(this, dim, index, src); }
  indexPut_(indices: (Tensor | null)[], values: Tensor, accumulate = false): this { OP.indexPut_(this, indices, values, accumulate); return this; }

  // ---- conversion ----------------------------------------------------------------------
  to(dtype: DType): Tensor { return OP.toDtype(this, dtype); }
  toDevice(device: string, dtype?: DType): Tensor { return OP.toDevice(this, device, dtype ?? this.dtype); }
  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  long(): Tensor { return this.to('int64'); }

  // ---- in place (mutate this tensor; use under noGrad for parameters) -----------------
  add_(o: TensorLike, alpha: number = 1): this { OP.add_(this, o, alpha); return this; }
  sub_(o: TensorLike, alpha: number = 1): this { OP.sub_(this, o, alpha); return this; }
  mul_(o: TensorLike): this { OP.mul_(this, o); return this; }
  div_(o: TensorLike): this { OP.div_(this, o); return this; }
  addcmul_(a: Tensor, b: Tensor, value: number = 1): this { OP.addcmul_(this, a, b, value); return this; }
  addcdiv_(a: Tensor, b: Tensor, value: number = 1): this { OP.addcdiv_(this, a, b, value); return this; }
  lerp_(end: Tensor, weight: number): this { OP.lerp_(this, end, weight); return this; }
  /** In-place ReLU: safe after conv and batch norm (their backward does not read their output). */
  relu_(): this { OP.relu_(this); return this; }
  clamp_(min?: number | null, max?: number | null): this { OP.clamp_(this, min ?? null, max ?? null); return this; }
  copy_(src: Tensor): this { OP.copy_(this, src); return this; }
  fill_(v: number): this { OP.fill_(this, v); return this; }
  zero_(): this { OP.zero_(this); return this; }
  uniform_(from = 0, to = 1): this { OP.uniform_(this, from, to); return this; }
  normal_(mean = 0, std = 1): this { OP.normal_(this, mean, std); return this; }
  maskedFill_(mask: Tensor, value: number): this { OP.maskedFill_(this, mask, value); return this; }
}

// ---- typed arrays ----------------------------------------------------------------------
export type TypedArrayOf<D extends DType> = D extends 'float32' ? Float32Array : D extends 'float64' ? Float64Array : D extends 'int32' ? Int32Array : D extends 'int64' ? BigInt64Array : D extends 'int16' ? Int16Array : D extends 'int8' ? Int8Array : D extends 'float16' | 'bfloat16' ? Uint16Array : Uint8Array;

function typedView(dtype: DType, buf: ArrayBuffer): TypedArrayOf<DType> {
  switch (dtype) {
    case 'float32': return new Float32Array(buf);
    case 'float64': return new Float64Array(buf);
    case 'int32': return new Int32Array(buf);
    case 'int64': return new BigInt64Array(buf);
    case 'int16': return new Int16Array(buf);
    case 'int8': return new Int8Array(buf);
    case 'float16': case 'bfloat16': return new Uint16Array(buf);
    default: return new Uint8Array(buf);
  }
}

function dtypeOfArray(a: ArrayBufferView): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Uint8Array) return 'uint8';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Int16Array) return 'int16';
  throw new Error(`tensor(): unsupported typed array ${a.constructor.name}`);
}

function flat(args: readonly (number | Shape)[]): number[] {
  return args.length === 1 && Array.isArray(args[0]) ? [...(args[0] as Shape)] : (args as number[]);
}

function dims(d: number | number[]): number[] { return Array.isArray(d) ? d : [d]; }

// ---- the operator table -------------------------------------------------------------------
type OpFn = (...args: unknown[]) => any; // eslint-disable-line @typescript-eslint/no-explicit-any

function unwrapArg(a: unknown): unknown {
  if (a instanceof Tensor) return a.handle;
  if (Array.isArray(a) && a.some((x) => x instanceof Tensor)) return a.map(unwrapArg);
  if (a !== null && typeof a === 'object' && !Array.isArray(a) && !ArrayBuffer.isView(a) && !native.isTensor(a)) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(a)) o[k] = unwrapArg(v);
    return o;
  }
  return a;
}

function wrapResult(r: unknown, args: unknown[]): unknown {
  if (r === null || r === undefined || typeof r !== 'object') return r;
  if (Array.isArray(r)) return r.map((x) => wrapResult(x, args));
  // in-place ops return the caller's own handle: hand back the caller's Tensor
  for (const a of args) if (a instanceof Tensor && (a.handle as unknown) === r) return a;
  return new Tensor(r as Handle);
}

/**
 * A callable for the ATen operator `name.overload`, resolved once on first use. Arguments follow the
 * schema (`schema` shows it); a trailing plain object gives keyword arguments by schema name.
 */
/** Operators that take a file name (aten::from_file): refused, so that no file is read through the engine. */
const FILE_ARGUMENT = /\bstr\??\s+(filename|fname|file|path)\b/;

export function op(name: string, overload = ''): OpFn & { readonly schema: string } {
  let id = -1;
  const resolve = (): number => {
    if (id >= 0) return id;
    const i = native.opId(name, overload);
    if (FILE_ARGUMENT.test(native.schema(i))) throw new Error(`${name}: refused, the engine reads no files through operators (${native.schema(i)})`);
    return (id = i);
  };
  const f = (...args: unknown[]): unknown => {
    const i = resolve();
    const u = new Array(args.length);
    for (let k = 0; k < args.length; k++) u[k] = unwrapArg(args[k]);
    return wrapResult(native.call(i, ...u), args);
  };
  Object.defineProperty(f, 'schema', { get: () => native.schema(resolve()) });
  return f as OpFn & { readonly schema: string };
}

/** Escape hatch: call any ATen operator by schema name, e.g. callOp('aten::erf', '', x). */
export function callOp(name: string, overload: string, ...args: unknown[]): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  return op(name, overload)(...args);
}

export const OP = {
  detach: op('aten::detach'), item: op('aten::item'),
  add: op('aten::add', 'Tensor'), sub: op('aten::sub', 'Tensor'), mul: op('aten::mul', 'Tensor'),
  div: op('aten::div', 'Tensor'), divMode: op('aten::div', 'Tensor_mode'),
  pow: op('aten::pow', 'Tensor_Scalar'), powT: op('aten::pow', 'Tensor_Tensor'),
  neg: op('aten::neg'), abs: op('aten::abs'), sign: op('aten::sign'), sqrt: op('aten::sqrt'), rsqrt: op('aten::rsqrt'),
  exp: op('aten::exp'), log: op('aten::log'), square: op('aten::square'), relu: op('aten::relu'), relu_: op('aten::relu_'),
  sigmoid: op('aten::sigmoid'), tanh: op('aten::tanh'), clamp: op('aten::clamp'), clamp_: op('aten::clamp_'),
  maximum: op('aten::maximum'), minimum: op('aten::minimum'), floor: op('aten::floor'), round: op('aten::round'),
  eq: op('aten::eq', 'Tensor'), ne: op('aten::ne', 'Tensor'), lt: op('aten::lt', 'Tensor'), le: op('aten::le', 'Tensor'),
  gt: op('aten::gt', 'Tensor'), ge: op('aten::ge', 'Tensor'),
  logicalAnd: op('aten::logical_and'), logicalOr: op('aten::logical_or'), logicalNot: op('aten::logical_not'),
  isfinite: op('aten::isfinite'),
  sumAll: op('aten::sum'), sum: op('aten::sum', 'dim_IntList'), meanAll: op('aten::mean'), mean: op('aten::mean', 'dim'),
  var: op('aten::var', 'dim'), std: op('aten::std', 'dim'), amax: op('aten::amax'), amin: op('aten::amin'),
  maxDim: op('aten::max', 'dim'), minDim: op('aten::min', 'dim'), argmax: op('aten::argmax'), argmin: op('aten::argmin'),
  normAll: op('aten::norm', 'Scalar'), norm: op('aten::norm', 'ScalarOpt_dim'), any: op('aten::any'), all: op('aten::all'),
  topk: op('aten::topk'), sort: op('aten::sort'), cumsum: op('aten::cumsum'),
  matmul: op('aten::matmul'), mm: op('aten::mm'), t: op('aten::t'),
  reshape: op('aten::reshape'), view: op('aten::view'), flatten: op('aten::flatten', 'using_ints'),
  permute: op('aten::permute'), transpose: op('aten::transpose', 'int'), squeezeAll: op('aten::squeeze'),
  squeeze: op('aten::squeeze', 'dim'), unsqueeze: op('aten::unsqueeze'), expand: op('aten::expand'),
  repeat: op('aten::repeat'), flip: op('aten::flip'), contiguous: op('aten::contiguous'), clone: op('aten::clone'),
  slice: op('aten::slice', 'Tensor'), narrow: op('aten::narrow'), select: op('aten::select', 'int'),
  index: op('aten::index', 'Tensor'), indexSelect: op('aten::index_select'), maskedFill: op('aten::masked_fill', 'Scalar'),
  maskedFill_: op('aten::masked_fill_', 'Scalar'), maskedSelect: op('aten::masked_select'), gather: op('aten::gather'),
  scatter: op('aten::scatter', 'src'), scatterValue: op('aten::scatter', 'value'), scatterAdd: op('aten::scatter_add'),
  indexPut_: op('aten::index_put_'),
  toDtype: op('aten::to', 'dtype'), toDevice: op('aten::to', 'device'),
  add_: op('aten::add_', 'Tensor'), sub_: op('aten::sub_', 'Tensor'), mul_: op('aten::mul_', 'Tensor'), div_: op('aten::div_', 'Tensor'),
  addcmul_: op('aten::addcmul_'), addcdiv_: op('aten::addcdiv_'), lerp_: op('aten::lerp_', 'Scalar'),
  copy_: op('aten::copy_'), fill_: op('aten::fill_', 'Scalar'), zero_: op('aten::zero_'),
  uniform_: op('aten::uniform_'), normal_: op('aten::normal_'),
  cat: op('aten::cat'), stack: op('aten::stack'), where: op('aten::where', 'self'),
  zeros: op('aten::zeros'), ones: op('aten::ones'), full: op('aten::full'), empty: op('aten::empty', 'memory_format'),
  zerosLike: op('aten::zeros_like'), onesLike: op('aten::ones_like'),
  arange: op('aten::arange', 'start_step'), rand: op('aten::rand'), randn: op('aten::randn'),
  randint: op('aten::randint', 'low'), randperm: op('aten::randperm'), eye: op('aten::eye'),
  bernoulli: op('aten::bernoulli', 'p'),
};

// ---- factories -------------------------------------------------------------------------------
/** A tensor from a typed array or nested-free number array; the data is copied. */
export function tensor(data: ArrayBufferView | readonly number[], shape?: Shape, dtype?: DType): Tensor {
  let view: ArrayBufferView;
  let dt: DType;
  if (ArrayBuffer.isView(data)) {
    dt = dtypeOfArray(data);
    view = data;
    if (dtype && dtype !== dt) {
      const t = tensor(data, shape);
      const c = t.to(dtype);
      t.dispose();
      return c;
    }
  } else {
    dt = dtype ?? 'float32';
    view = arrayFor(dt, data);
  }
  const n = (view as unknown as { length: number }).length;
  return new Tensor(native.fromBytes(view, dt, shape ?? [n]));
}

function arrayFor(dtype: DType, data: readonly number[]): ArrayBufferView {
  switch (dtype) {
    case 'float32': return Float32Array.from(data);
    case 'float64': return Float64Array.from(data);
    case 'int32': return Int32Array.from(data);
    case 'int64': return BigInt64Array.from(data, (x) => BigInt(Math.trunc(x)));
    case 'int16': return Int16Array.from(data);
    case 'int8': return Int8Array.from(data);
    case 'uint8': case 'bool': return Uint8Array.from(data, (x) => (dtype === 'bool' ? (x ? 1 : 0) : x));
    default: throw new Error(`tensor(): cannot build ${dtype} from numbers; build float32 and convert with .to()`);
  }
}

/** A tensor of any dtype from its raw little-endian bytes (safetensors, torch.save storages). */
export function fromBytes(bytes: Uint8Array, dtype: DType, shape: Shape): Tensor {
  return new Tensor(native.fromBytes(bytes, dtype, shape));
}

type Opts = { dtype?: DType; device?: string };
const fopts = (o?: Opts) => ({ dtype: o?.dtype ?? 'float32', device: o?.device ?? null });

export const zeros = (shape: Shape, o?: Opts): Tensor => OP.zeros(shape, fopts(o));
export const ones = (shape: Shape, o?: Opts): Tensor => OP.ones(shape, fopts(o));
export const full = (shape: Shape, value: number, o?: Opts): Tensor => OP.full(shape, value, fopts(o));
export const empty = (shape: Shape, o?: Opts): Tensor => OP.empty(shape, fopts(o));
export const zerosLike = (t: Tensor): Tensor => OP.zerosLike(t);
export const onesLike = (t: Tensor): Tensor => OP.onesLike(t);
export const arange = (start: number, end: number, step = 1, o?: Opts): Tensor => OP.arange(start, end, step, { dtype: o?.dtype ?? 'int64', device: o?.device ?? null });
export const rand = (shape: Shape, o?: Opts): Tensor => OP.rand(shape, fopts(o));
export const randn = (shape: Shape, o?: Opts): Tensor => OP.randn(shape, fopts(o));
export const randint = (low: number, high: number, shape: Shape): Tensor => OP.randint(low, high, shape, { dtype: 'int64' });
export const randperm = (n: number): Tensor => OP.randperm(n, { dtype: 'int64' });
export const eye = (n: number, o?: Opts): Tensor => OP.eye(n, fopts(o));
export const cat = (ts: Tensor[], dim = 0): Tensor => OP.cat(ts, dim);
export const stack = (ts: Tensor[], dim = 0): Tensor => OP.stack(ts, dim);
export const where = (cond: Tensor, a: TensorLike, b: TensorLike): Tensor => OP.where(cond, a, b);
export const scalar = (v: number, dtype: DType = 'float32'): Tensor => OP.full([], v, { dtype });

// ---- memory -------------------------------------------------------------------------------
type Tree = Tensor | null | undefined | number | string | boolean | Tree[] | { [k: string]: Tree } | Map<unknown, Tree>;

function collect(v: unknown, out: Set<Tensor>, seen = new Set<unknown>()): void {
  if (v instanceof Tensor) { out.add(v); return; }
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (Array.isArray(v)) for (const x of v) collect(x, out, seen);
  else if (v instanceof Map) for (const x of v.values()) collect(x, out, seen);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out, seen);
}

/**
 * Runs fn and disposes every tensor created inside it, except those it returns (found in
 * arrays, Maps and plain objects) and those in `keep`. Nested scopes hand survivors outward.
 */
export function scope<T>(fn: () => T, keep: Tensor[] = []): T {
  const created: Tensor[] = [];
  scopes.push(created);
  let out: T;
  try {
    out = fn();
  } catch (e) {
    scopes.pop();
    for (const t of created) if (!t.disposed) t.dispose();
    throw e;
  }
  scopes.pop();
  const survivors = new Set<Tensor>(keep);
  collect(out, survivors);
  const outer = scopes[scopes.length - 1];
  for (const t of created) {
    if (survivors.has(t)) { if (outer) outer.push(t); } else t.dispose();
  }
  return out;
}

/** Takes t out of the current scope so the scope's end does not free it. */
export function keep<T extends Tensor>(t: T): T {
  const s = scopes[scopes.length - 1];
  if (s) { const i = s.lastIndexOf(t); if (i >= 0) s.splice(i, 1); }
  return t;
}

/** Disposes every tensor in a value (arrays, Maps, plain objects). */
export function dispose(v: Tree | unknown): void {
  const s = new Set<Tensor>();
  collect(v, s);
  for (const t of s) if (!t.disposed) t.dispose();
}

// ---- autograd modes ---------------------------------------------------------------------------
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try { return fn(); } finally { native.setGradEnabled(prev); }
}

export function enableGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(true);
  try { return fn(); } finally { native.setGradEnabled(prev); }
}

/** Runs fn with no autograd bookkeeping at all (faster than noGrad; results never need grads). */
export function inferenceMode<T>(fn: () => T): T { return native.inferenceMode(fn); }

export const isGradEnabled = (): boolean => native.isGradEnabled();
export const manualSeed = (seed: number): void => native.manualSeed(seed);
export const setDeterministic = (on: boolean): void => native.setDeterministic(on);
export const setNumThreads = (n: number): void => native.setNumThreads(n);
export const getNumThreads = (): number => native.getNumThreads();
export const memoryStats = () => native.stats();
export const buildInfo = () => native.buildInfo();
/** The caching CPU allocator: whether it is on and how many freed bytes it keeps for reuse. */
export const allocatorStats = () => native.allocatorStats();
/** Returns the allocator's cached blocks to the system. */
export const emptyCache = (): void => native.emptyCache();

/** Applies fns in turn, freeing each intermediate result (never x itself) as soon as it is used. */
export function pipe(x: Tensor, ...fns: ((t: Tensor) => Tensor)[]): Tensor {
  let h = x;
  for (const f of fns) {
    const next = f(h);
    if (h !== x && next !== h) h.dispose();
    h = next;
  }
  return h;
}
